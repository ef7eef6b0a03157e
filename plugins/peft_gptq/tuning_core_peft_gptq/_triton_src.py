"""Kernel bodies for triton_kernels.py, kept undecorated: ``triton.jit`` wraps them on demand.

Imports triton at module level, so only import this module when triton is installed.
"""

import triton.language as tl


def fwd_kernel(
    x_ptr,
    qw_ptr,
    sc_ptr,
    qz_ptr,
    gi_ptr,
    out_ptr,
    M,
    N,
    K,
    zero_offset,
    stride_xm,
    stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    F32_DOT: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    zshift = (offs_n % 8) * 4
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        a = tl.load(
            x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :], mask=mask_m[:, None] & mask_k[None, :], other=0.0
        )
        wmask = mask_k[:, None] & mask_n[None, :]
        qw = tl.load(qw_ptr + (offs_k // 8)[:, None] * N + offs_n[None, :], mask=wmask, other=0)
        g = tl.load(gi_ptr + offs_k, mask=mask_k, other=0)
        sc = tl.load(sc_ptr + g[:, None] * N + offs_n[None, :], mask=wmask, other=0.0)
        qz = tl.load(qz_ptr + g[:, None] * (N // 8) + (offs_n // 8)[None, :], mask=wmask, other=0)
        q = (qw >> ((offs_k % 8) * 4)[:, None]) & 0xF
        z = ((qz >> zshift[None, :]) & 0xF) + zero_offset
        w = (q - z).to(tl.float32) * sc.to(tl.float32)
        if F32_DOT:
            acc += tl.dot(a.to(tl.float32), w, input_precision="ieee")
        else:
            acc += tl.dot(a, w.to(a.dtype))
    tl.store(
        out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=mask_m[:, None] & mask_n[None, :],
    )


def bwd_kernel(
    g_ptr,
    qw_ptr,
    sc_ptr,
    qz_ptr,
    gi_ptr,
    out_ptr,
    M,
    N,
    K,
    zero_offset,
    stride_gm,
    stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    F32_DOT: tl.constexpr,
):
    # out[M, K] = grad[M, N] @ W[K, N]^T, looping over N.
    pid_m = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_k = offs_k < K
    g = tl.load(gi_ptr + offs_k, mask=mask_k, other=0)
    kshift = ((offs_k % 8) * 4)[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        gr = tl.load(
            g_ptr + offs_m[:, None] * stride_gm + offs_n[None, :], mask=mask_m[:, None] & mask_n[None, :], other=0.0
        )
        wmask = mask_k[:, None] & mask_n[None, :]
        qw = tl.load(qw_ptr + (offs_k // 8)[:, None] * N + offs_n[None, :], mask=wmask, other=0)
        sc = tl.load(sc_ptr + g[:, None] * N + offs_n[None, :], mask=wmask, other=0.0)
        qz = tl.load(qz_ptr + g[:, None] * (N // 8) + (offs_n // 8)[None, :], mask=wmask, other=0)
        q = (qw >> kshift) & 0xF
        z = ((qz >> ((offs_n % 8) * 4)[None, :]) & 0xF) + zero_offset
        w = (q - z).to(tl.float32) * sc.to(tl.float32)  # [BLOCK_K, BLOCK_N]
        if F32_DOT:
            acc += tl.dot(gr.to(tl.float32), tl.trans(w), input_precision="ieee")
        else:
            acc += tl.dot(gr, tl.trans(w.to(gr.dtype)))
    tl.store(
        out_ptr + offs_m[:, None] * stride_om + offs_k[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=mask_m[:, None] & mask_k[None, :],
    )
