"""tuning-core plugin: evaluate tuned models with lm-evaluation-harness and score generations on a test set."""
