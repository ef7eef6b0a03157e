"""`accelerate launch ... tests/distributed/fsdp_on_cpu.py TRAIN ARGS`: tuning-core training with FSDP on CPU.

accelerate applies FSDP only on GPUs: on a CPU (gloo) multi-process run it keeps
DistributedType.MULTI_CPU and quietly trains with DDP. torch's FSDP2
(`fully_shard`) itself works on CPU over gloo, so for tests this script makes
accelerate take the FSDP path it would take on GPUs, and nothing else: the FSDP
plugin still comes from the accelerate config file (ACCELERATE_USE_FSDP and the
FSDP_* variables `accelerate launch` sets), and the run is `tuning-core train`
unchanged (`tuning_core.sft_trainer.run`).
"""

import os
import sys

import accelerate.state
from accelerate.utils import DistributedType

_original_init = accelerate.state.AcceleratorState.__init__


def _init_allowing_fsdp_on_cpu(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    wants_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if wants_fsdp and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = kwargs.get("fsdp_plugin")
        accelerate.state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


accelerate.state.AcceleratorState.__init__ = _init_allowing_fsdp_on_cpu

if __name__ == "__main__":
    from tuning_core.sft_trainer import run

    sys.exit(run())
