"""Training data: read fms-hf-tuning's data formats and produce exactly masked ``input_ids``/``labels``.

Import-light: heavy libraries are imported inside the functions that need them.
"""

from tuning_core.data.arguments import DataArguments
from tuning_core.data.pipeline import ProcessedData, prepare_datasets, save_processed

__all__ = ["DataArguments", "ProcessedData", "prepare_datasets", "save_processed"]
