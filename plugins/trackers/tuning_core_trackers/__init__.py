"""tuning-core plugin: record training runs in Aim and MLflow with fms-hf-tuning's tracker flags."""
