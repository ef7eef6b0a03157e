"""A test-only plugin: when training ends, each rank writes what it holds to $RANK_PROBE_DIR/rank<N>.json.

Loaded through a throwaway entry point (conftest.probe_env) so it runs inside
processes that torchrun / accelerate launch start, exactly like a real plugin.
"""

import hashlib
import json
import os

from tuning_core.plugin_api import hookimpl


def _snapshot(args, state, model):
    from accelerate.state import AcceleratorState

    digest = hashlib.sha256()
    local = total = 0
    sharded = False
    for name, param in sorted(model.named_parameters()):
        data = param.detach()
        if hasattr(data, "to_local"):  # a DTensor: FSDP2 keeps only this rank's shard
            sharded = True
            total += data.numel()
            data = data.to_local()
        else:
            total += data.numel()
        local += data.numel()
        digest.update(name.encode())
        digest.update(data.contiguous().cpu().numpy().tobytes())
    return {
        "process_index": args.process_index,
        "world_size": args.world_size,
        "distributed_type": str(AcceleratorState().distributed_type).split(".")[-1],
        "global_step": state.global_step,
        "sha256": digest.hexdigest(),
        "sharded": sharded,
        "local_numel": local,
        "total_numel": total,
    }


@hookimpl
def tuning_core_trainer_callbacks(config, run):
    from transformers import TrainerCallback

    out = os.environ["RANK_PROBE_DIR"]

    class RankProbe(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            os.makedirs(out, exist_ok=True)
            record = _snapshot(args, state, model)
            with open(os.path.join(out, f"rank{args.process_index}.json"), "w") as f:
                json.dump(record, f)

    return [RankProbe()]
