"""Run by test_fused_moe_expert_parallel.py under torchrun (2 gloo processes, CPU).

Each rank trains on its half of a batch with its half of the experts. Checked on every rank against an
unsharded copy of the model in the same process: the rank's loss (with the router aux loss) and the
gradients of the replicated parameters equal those of its half alone; the expert gradients equal those of
the sum of both halves' losses (the expert owner receives every rank's tokens), sliced to this rank's experts.
"""

import sys

import torch
import torch.distributed as dist
import transformers

from tuning_core_fused_ops.patches.moe import shard_experts


def loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=ids, output_router_logits=True).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def main(model_dir):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    ids = torch.randint(3, 400, (4, 9))
    halves = [ids[:2], ids[2:, :7]]  # different token counts per rank: the padding path runs too

    def load():
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
        torch.manual_seed(1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "experts" in name or "gate" in name:
                    p.normal_(0, 0.3)
        return model.train()

    reference = load()
    per_half = [loss_and_grads(reference, h) for h in halves]
    model = load()
    assert shard_experts(model, use_triton=False) == 2
    loss, grads = loss_and_grads(model, halves[rank])

    torch.testing.assert_close(loss, per_half[rank][0], rtol=1e-5, atol=1e-6)
    assert grads.keys() == per_half[rank][1].keys()
    checked = 0
    for name, grad in grads.items():
        if "experts" in name:
            local = grad.shape[0]
            expected = (per_half[0][1][name] + per_half[1][1][name])[rank * local : (rank + 1) * local]
            assert local == reference.get_parameter(name).shape[0] // 2
        else:
            expected = per_half[rank][1][name]
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5, msg=name)
        checked += 1
    print(f"rank {rank}: loss {loss.item():.6f} and {checked} gradients match", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
