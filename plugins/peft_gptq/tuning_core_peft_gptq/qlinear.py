"""The quantized linear layer that replaces ``nn.Linear`` in a loaded GPTQ model.

It subclasses ``nn.Linear`` without a float weight: peft's default LoRA layer
then wraps it (and ``target_modules all-linear`` finds it) with no custom
registration, so a saved adapter loads with plain ``peft.PeftModel.from_pretrained``.
``weight`` is an empty placeholder that only carries the device and compute
dtype (peft and transformers read those from it); anything that would write a
float weight, such as merging an adapter, fails on its shape instead of being
silently lost. The base stays frozen: no weight gradient is ever computed, only
the input gradient LoRA needs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tuning_core_peft_gptq import nibbles


def _contiguous_groups(g_idx: torch.Tensor, group_size: int) -> bool:
    """True when input row i belongs to group i // group_size (no desc_act permutation)."""
    expected = torch.arange(g_idx.numel(), device=g_idx.device, dtype=g_idx.dtype) // group_size
    return bool(torch.equal(g_idx, expected))


class QuantLinear(nn.Linear):
    """A frozen 4-bit GPTQ linear layer: ``y = x @ dequant(qweight) + bias``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        group_size: int = 128,
        bias: bool = False,
        zero_offset: int = 1,
        device=None,
        dtype=torch.float32,
    ):
        nn.Module.__init__(self)  # deliberately not nn.Linear.__init__: no float weight
        if in_features % nibbles.PER_INT32 or out_features % nibbles.PER_INT32:
            raise ValueError(f"GPTQ packing needs in/out features divisible by 8, got {in_features}x{out_features}")
        self.in_features, self.out_features = in_features, out_features
        self.group_size = in_features if group_size == -1 else group_size
        self.zero_offset = zero_offset
        self.backend = "auto"  # "torch" forces the dequantize-then-matmul path, "triton" the fused kernels
        groups = math.ceil(in_features / self.group_size)
        self.register_buffer("qweight", torch.zeros(in_features // 8, out_features, dtype=torch.int32, device=device))
        self.register_buffer("qzeros", torch.zeros(groups, out_features // 8, dtype=torch.int32, device=device))
        self.register_buffer("scales", torch.zeros(groups, out_features, dtype=torch.float16, device=device))
        g_idx = torch.arange(in_features, dtype=torch.int32, device=device) // self.group_size
        self.register_buffer("g_idx", g_idx)
        self.register_buffer("weight", torch.empty(0, dtype=dtype, device=device), persistent=False)
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device), requires_grad=False)
        else:
            self.register_parameter("bias", None)
        self._plain_groups: bool | None = None

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_packed(
        cls,
        qweight,
        qzeros,
        scales,
        g_idx,
        bias=None,
        zero_offset: int = 1,
        group_size: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> QuantLinear:
        """Build from checkpoint tensors; the group size is inferred from the shapes when not given."""
        in_features, out_features = qweight.shape[0] * 8, qweight.shape[1]
        if group_size is None:
            group_size = math.ceil(in_features / scales.shape[0])
        layer = cls(
            in_features,
            out_features,
            group_size=group_size,
            bias=bias is not None,
            zero_offset=zero_offset,
            device=qweight.device,
            dtype=dtype,
        )
        layer.qweight.copy_(qweight)
        layer.qzeros.copy_(qzeros)
        layer.scales.copy_(scales)
        layer.g_idx.copy_(g_idx)
        if bias is not None:
            layer.bias.data.copy_(bias)
        return layer

    def reset_parameters(self) -> None:  # nn.Linear API; the weights come from the checkpoint
        return None

    def _load_from_state_dict(self, *args, **kwargs):
        self._plain_groups = None
        return super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bits=4, "
            f"group_size={self.group_size}, bias={self.bias is not None}, backend={self.backend}"
        )

    # --- numerics -----------------------------------------------------------------------------
    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The float weight as [in_features, out_features] (the transpose of nn.Linear.weight)."""
        q = nibbles.unpack_rows(self.qweight)
        zeros = nibbles.unpack_cols(self.qzeros) + self.zero_offset
        if self._plain_groups is None:
            self._plain_groups = _contiguous_groups(self.g_idx, self.group_size)
        if self._plain_groups and self.in_features % self.group_size == 0:
            # Broadcast per group instead of gathering a full [in, out] index.
            g, n = zeros.shape
            w = (q.view(g, -1, n) - zeros.unsqueeze(1)).to(dtype) * self.scales.to(dtype).unsqueeze(1)
            return w.view(self.in_features, n)
        idx = self.g_idx.long()
        return (q - zeros[idx]).to(dtype) * self.scales.to(dtype)[idx]

    def input_grad(self, dy: torch.Tensor) -> torch.Tensor:
        """``dy W`` for 2-D ``dy`` without a dense weight on CUDA (plugin_api.QuantizedLinear's input-grad path)."""
        return _matmul_t(dy.contiguous(), self, "triton" if self._use_triton(dy) else "torch")

    def _use_triton(self, x: torch.Tensor) -> bool:
        if self.backend == "triton":
            return True
        if self.backend == "torch" or not x.is_cuda:
            return False
        from tuning_core_peft_gptq import triton_kernels

        return triton_kernels.available()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        backend = "triton" if self._use_triton(x) else "torch"
        if torch.is_grad_enabled() and x.requires_grad:
            out = _DequantMatmul.apply(x2, self, backend)
        else:
            out = _matmul(x2, self, backend)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.reshape(*shape[:-1], self.out_features)


def _matmul(x: torch.Tensor, layer: QuantLinear, backend: str) -> torch.Tensor:
    if backend == "triton":
        from tuning_core_peft_gptq import triton_kernels

        return triton_kernels.matmul(x, layer.qweight, layer.scales, layer.qzeros, layer.g_idx, layer.zero_offset)
    return x @ layer.dequantize(x.dtype)


def _matmul_t(grad: torch.Tensor, layer: QuantLinear, backend: str) -> torch.Tensor:
    if backend == "triton":
        from tuning_core_peft_gptq import triton_kernels

        return triton_kernels.matmul_t(grad, layer.qweight, layer.scales, layer.qzeros, layer.g_idx, layer.zero_offset)
    return grad @ layer.dequantize(grad.dtype).t()


class _DequantMatmul(torch.autograd.Function):
    """x @ W with W rebuilt from the packed tensors in both passes, so no float weight is kept."""

    @staticmethod
    def forward(ctx, x, layer, backend):
        ctx.layer, ctx.backend = layer, backend
        return _matmul(x, layer, backend)

    @staticmethod
    def backward(ctx, grad):
        return _matmul_t(grad.contiguous(), ctx.layer, ctx.backend), None, None
