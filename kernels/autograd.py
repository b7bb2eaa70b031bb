"""Autograd ops over the fused QuEST kernels (what `QuantLinear(backend="triton")` calls).

`quest_fake_quant(x, …)`      → Q(x·H)·Hᵀ      (original domain), ∂x = ((g·H) ⊙ M)·Hᵀ
`quest_fake_quant_rotated(x)` → Q(x·H)         (rotated domain: Q(xH)·Q(WH)ᵀ is the same GEMM),
                                               ∂x = (g ⊙ M)·Hᵀ
Only the trust mask is saved for the backward: packed, K/8 bytes per row (`mask_format="packed"`,
default; "bytes" saves K bytes per row and skips the in-kernel bit packing).  `config`: explicit
launch settings (default: `default_config()`).
`out_dtype` (e.g. the autocast dtype) makes the kernel write x̂ in that dtype directly; ∂x always
comes back in x's dtype.  `group_size`: one grid per G consecutive rotated values (kernels/quest.py
module doc); the backward does not depend on it (the mask carries everything).
Eager mode runs `_QuestFakeQuant`; under `torch.compile` the same bodies run as the custom ops
`quest_lab::fake_quant` / `quest_lab::fake_quant_bwd` (kernels/ops.py).
"""
from __future__ import annotations

import torch

from quest_lab.kernels._common import SUPPORTED_DTYPES, LaunchConfig, check_2d, check_bits, check_group
from quest_lab.kernels.ops import encode_config, fake_quant_bwd_impl, fake_quant_fwd_impl, use_ops
from quest_lab.kernels.quest import MASK_FORMATS
from quest_lab.kernels.reference import pick_block


class _QuestFakeQuant(torch.autograd.Function):
    """The eager path (lower host time per call than the `quest_lab::fake_quant` custom op, which
    `torch.compile` traces instead; kernels/ops.py).  Same bodies as the op."""

    @staticmethod
    def forward(ctx, x, bits, alpha, trust, hadamard, block, rotated, out_dtype, round_input, config, mask_format,
                group_size):
        out, mask = fake_quant_fwd_impl(x, bits, alpha, trust, hadamard, block, rotated, out_dtype, round_input,
                                        config, mask_format, group_size)
        ctx.save_for_backward(mask)
        ctx.meta = (block, hadamard, rotated, x.dtype, config)
        return out

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        block, hadamard, rotated, in_dtype, config = ctx.meta
        return (fake_quant_bwd_impl(grad, mask, block, hadamard, rotated, config, in_dtype),) + (None,) * 11


def _apply(x, bits, alpha, trust, hadamard, tb, rotated, out_dtype, round_input, config, mask_format, group_size):
    if use_ops():  # torch.compile traces the custom op (kernels/ops.py)
        return torch.ops.quest_lab.fake_quant(x, bits, float(alpha), None if trust is None else float(trust),
                                              hadamard, tb, rotated, out_dtype, round_input, encode_config(config),
                                              mask_format, group_size)[0]
    return _QuestFakeQuant.apply(x, bits, alpha, trust, hadamard, tb, rotated, out_dtype, round_input, config,
                                 mask_format, group_size)


def _check(x: torch.Tensor, bits: int, alpha: float, block: int, hadamard: bool,
           out_dtype: torch.dtype | None, mask_format: str = "packed", group_size: int | None = None) -> int:
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise ValueError("x must be a tensor of shape (..., K)")
    if hadamard and (block < 16 or x.shape[-1] % block):
        raise ValueError(f"last dim of x {tuple(x.shape)} must be a multiple of the Hadamard block={block} "
                         "and the block must be >= 16 for the Triton kernels (use the torch backend)")
    if out_dtype is not None and out_dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"out_dtype={out_dtype} must be float32, float16 or bfloat16")
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format={mask_format!r} must be one of {MASK_FORMATS}")
    k = x.shape[-1]
    tb = block if hadamard else pick_block(k)
    check_2d("x", x.detach().as_strided((1, k), (k, 1)) if x.numel() else x.reshape(-1, k), tb)  # dtype/K/device
    check_bits(bits, alpha)
    check_group(k, group_size)
    return tb


def quest_fake_quant(x: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                     hadamard: bool = True, block: int = 128, out_dtype: torch.dtype | None = None,
                     round_input: bool = False, config: LaunchConfig | None = None,
                     mask_format: str = "packed", group_size: int | None = None) -> torch.Tensor:
    """QuEST fake quantization along the last dim, de-rotated: Q(x·H)·Hᵀ (x's shape; `out_dtype`,
    default x's dtype).

    One scale per row of (..., K) (tokens for activations, output rows for a weight (N, K)), or per
    group of `group_size` consecutive rotated values.
    hadamard=False: no rotation (plain Gaussian clip + trust mask).  trust=None: half a step.
    round_input: quantize bf16(x) (an fp32 x rounded on load; ∂x is still the masked gradient).
    """
    tb = _check(x, bits, alpha, block, hadamard, out_dtype, mask_format, group_size)
    return _apply(x, bits, alpha, trust, hadamard, tb, False, out_dtype, round_input, config, mask_format, group_size)


def quest_fake_quant_rotated(x: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                             block: int = 128, out_dtype: torch.dtype | None = None,
                             round_input: bool = False, config: LaunchConfig | None = None,
                             mask_format: str = "packed", group_size: int | None = None) -> torch.Tensor:
    """Like `quest_fake_quant` but returns the rotated-domain Q(x·H) (for GEMMs in the rotated basis)."""
    tb = _check(x, bits, alpha, block, True, out_dtype, mask_format, group_size)
    return _apply(x, bits, alpha, trust, True, tb, True, out_dtype, round_input, config, mask_format, group_size)
