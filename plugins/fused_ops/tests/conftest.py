"""fused_ops tests run the Triton kernels on CPU tensors through Triton's interpreter.

Triton reads TRITON_INTERPRET when a kernel is decorated, so it is set here,
before any test module imports the kernels.
"""

import os
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, and single-threaded: tiny shapes on a shared 2-core machine run far faster without OpenMP."""
    import torch

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """GPU-only tests (marked ``gpu``: bf16/fp16, compiled kernels) skip without CUDA."""
    import torch

    if torch.cuda.is_available():
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and here in Path(item.path).parents:
            item.add_marker(skip)
