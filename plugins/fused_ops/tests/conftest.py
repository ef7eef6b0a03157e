"""fused_ops tests: CPU tests run the Triton kernels on CPU tensors through Triton's interpreter, which the
root conftest switches on only where no GPU exists; ``gpu``-marked tests run the compiled kernels on CUDA.
"""

from pathlib import Path

import pytest

from tuning_core.testing.gpu import count_triton_launches, interpreter_requested


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, and single-threaded: tiny shapes on a shared 2-core machine run far faster without OpenMP."""
    import torch

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_modeling_functions():
    """A RoPE patch replaces a modeling module's function process-wide: put it back after every test, so that
    a test which patches without unpatching cannot change what the next one runs (or counts)."""
    yield
    from tuning_core_fused_ops.patches.install import restore_functions

    restore_functions()


@pytest.fixture
def compiled_launches():
    """For gpu-marked tests: the kernels are compiled (not interpreted); yields a Counter of Triton launches
    by kernel name, so the test can prove the Triton path ran rather than a torch fallback."""
    from tuning_core_fused_ops.ops import _runtime

    assert not _runtime.INTERPRETED, "gpu tests need compiled kernels: unset TRITON_INTERPRET"
    with count_triton_launches() as launches:
        yield launches


def pytest_collection_modifyitems(config, items):
    """Without CUDA the ``gpu`` tests skip; on a GPU machine without the interpreter the CPU tests skip (they
    force Triton onto CPU tensors, which only the interpreter takes: run them with TRITON_INTERPRET=1)."""
    import torch

    here = Path(__file__).parent
    mine = [item for item in items if here in Path(item.path).parents]
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in mine:
            if "gpu" in item.keywords:
                item.add_marker(skip)
    elif not interpreter_requested():
        skip = pytest.mark.skip(reason="CPU kernel tests need TRITON_INTERPRET=1 (a GPU machine compiles kernels)")
        for item in mine:
            if "gpu" not in item.keywords:
                item.add_marker(skip)
