"""Kernels, each a Triton implementation plus a torch twin, with autograd:

cross_entropy     cross-entropy over a vocabulary (``ignore_index``), in-place loss+gradient for chunks
fused_linear_ce   chunked lm_head projection + cross-entropy, never building the full logits
rms_norm          RMSNorm (Llama casting), saves only x and 1/rms
rope              rotary embedding of q and k from per-token cos/sin (so position_ids are honoured)
swiglu            silu(a) * b, recomputed in backward
lora              LoRA projections (single, shared-input q/k/v, whole MLP) as single autograd nodes
"""
