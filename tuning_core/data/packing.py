"""--packing: extended pretraining data. Examples (each ending in EOS) are concatenated and cut into
max_seq_length chunks; every token is trained (fms-hf-tuning's `packing`, its docs/ept.md)."""

from __future__ import annotations


def pack(dataset, max_seq_length: int):
    """A datasets.Dataset of chunks of exactly ``max_seq_length`` tokens (the last one may be shorter), built
    from the flat token array without a per-example Python loop."""
    import datasets
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets.table import InMemoryTable

    if len(dataset) == 0:
        return dataset
    ids = dataset.with_format("arrow")[:]["input_ids"]  # honours a select()/mix's indices
    flat = pc.list_flatten(ids).to_numpy(zero_copy_only=False).astype(np.int64)
    total = len(flat)
    offsets = np.append(np.arange(0, total, max_seq_length, dtype=np.int64), total).astype(np.int32)
    column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
    return datasets.Dataset(InMemoryTable(pa.table({"input_ids": column, "labels": column})))
