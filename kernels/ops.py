"""The QuEST training-path kernels as `torch.library` custom ops (issue 12, item 2).

Registered under the `quest_lab` namespace (`torch.ops.quest_lab.*`):

  fake_quant(x, bits, alpha, trust, hadamard, block, rotated, out_dtype, round_input, config,
             mask_format, group_size) -> (x̂, mask)
      the fused Hadamard + quantize + trust-mask forward (`quest_fake_quant[_rotated]`); x̂ has x's
      shape, mask is the uint8 trust mask with x's leading shape (last dim K/8 packed, K bytes).
      Autograd (`register_autograd`): saves the mask only; ∂x = `fake_quant_bwd`.
  fake_quant_bwd(grad, mask, block, hadamard, grad_rotated, config, out_dtype) -> ∂x
      the masked-Hadamard backward (no autograd of its own: no double backward).
  dequantize_codes(codes, scale, mode, dtype) -> x̂          (kernels/lowp.py)
  lowp_linear(x, weight, bias, a_bits, a_alpha, a_trust, w_bits, w_alpha, w_trust, block, fmt,
              out_dtype, round_input) -> (out, cx, mx, sx, cw, mw, sw)       (kernels/lowp.py)
      the layer with the low-precision forward GEMM; autograd saves the codes, masks and scales and
      runs dequantize_codes + two GEMMs + fake_quant_bwd.

Each op has a fake (meta) implementation, so `torch.compile(fullgraph=True)` traces a training step
through them without graph breaks (the `torch.autograd.Function`s that eager mode runs are not
traceable: their bodies launch Triton kernels through Python-side plan caches).

Which path runs: the public functions (`quest_fake_quant`, `quest_fake_quant_rotated`,
`quest_lowp_linear`) call the ops while `torch.compile` traces them (`torch.compiler.is_compiling()`)
or when `EAGER_OPS` is set; otherwise the `autograd.Function`s, whose host time per call is lower (a
custom op adds its dispatcher + autograd wrapper: fwd+bwd of a fake-quant layer 1371 vs 1033 µs, of an FP8
layer 2015 vs 1317 µs on an H100 host; compiled with CUDA graphs 954 / 787 µs; benchmarks/KERNELS.md).  Both paths call the same launch code, so the numbers are identical.

`config` (a `LaunchConfig` or None) crosses the op boundary as a list of ints (`encode_config`): []
for None, else the fields in `CONFIG_FIELDS` order with None as −1 and bools as 0/1.
"""
from typing import Optional

import torch
from torch import Tensor

from quest_lab.kernels._common import LaunchConfig
from quest_lab.kernels.quest import _bwd_launch, _fwd_launch

# set True to run the custom ops in eager mode too (e.g. to time them: benchmarks/training_paths.py)
EAGER_OPS = False

CONFIG_FIELDS = ("tile_blocks", "num_warps", "num_stages", "programs_per_sm", "split_in", "split_mid",
                 "exact_codes", "rows", "two_pass", "pack", "fast_div")
_BOOL_FIELDS = ("exact_codes", "two_pass", "fast_div")


def use_ops() -> bool:
    """True where the public functions should call the custom ops (see the module doc)."""
    return EAGER_OPS or torch.compiler.is_compiling()


def encode_config(cfg: LaunchConfig | None) -> list[int]:
    if cfg is None:
        return []
    return [-1 if v is None else int(v) for v in (getattr(cfg, f) for f in CONFIG_FIELDS)]


_DECODED: dict[tuple[int, ...], LaunchConfig | None] = {}


def decode_config(enc: list[int] | tuple[int, ...]) -> LaunchConfig | None:
    key = tuple(enc)
    if key in _DECODED:
        return _DECODED[key]
    if not key:
        cfg = None
    else:
        if len(key) != len(CONFIG_FIELDS):
            raise ValueError(f"encoded LaunchConfig has {len(key)} fields, expected {len(CONFIG_FIELDS)}")
        vals: dict = {f: (None if v == -1 and f in ("split_in", "split_mid", "exact_codes") else v)
                      for f, v in zip(CONFIG_FIELDS, key)}
        for f in _BOOL_FIELDS:
            if vals[f] is not None:
                vals[f] = bool(vals[f])
        cfg = LaunchConfig(**vals)
    if len(_DECODED) < 256:
        _DECODED[key] = cfg
    return cfg


# --- shared bodies (the autograd.Function in autograd.py calls these too) --------------------------

def fake_quant_fwd_impl(x: Tensor, bits: int, alpha: float, trust: float | None, hadamard: bool, block: int,
                        rotated: bool, out_dtype: torch.dtype | None, round_input: bool,
                        config: LaunchConfig | None, mask_format: str, group_size: int | None):
    """(x̂ with x's shape, mask with x's leading shape × (K/8 or K))."""
    k = x.shape[-1]
    x2d = x.reshape(-1, k)
    if not x2d.is_contiguous():
        x2d = x2d.contiguous()
    out, mask, _ = _fwd_launch(x2d, bits, alpha, trust, block, hadamard, 0 if rotated else 1, config, out_dtype,
                               mask_format, round_input, group_size)
    return out.view(x.shape), mask.view(*x.shape[:-1], mask.shape[-1])


def fake_quant_bwd_impl(grad: Tensor, mask: Tensor, block: int, hadamard: bool, grad_rotated: bool,
                        config: LaunchConfig | None, out_dtype: torch.dtype) -> Tensor:
    k = grad.shape[-1]
    g2d = grad.reshape(-1, k)
    if not g2d.is_contiguous():
        g2d = g2d.contiguous()
    m2d = mask.reshape(-1, mask.shape[-1])
    if not m2d.is_contiguous():
        m2d = m2d.contiguous()
    return _bwd_launch(g2d, m2d, block, hadamard, grad_rotated, config, out_dtype).view(grad.shape)


# --- fake_quant ------------------------------------------------------------------------------------

@torch.library.custom_op("quest_lab::fake_quant", mutates_args=())
def fake_quant(x: Tensor, bits: int, alpha: float, trust: Optional[float], hadamard: bool, block: int,
               rotated: bool, out_dtype: Optional[torch.dtype], round_input: bool, config: list[int],
               mask_format: str, group_size: Optional[int]) -> tuple[Tensor, Tensor]:
    out, mask = fake_quant_fwd_impl(x, bits, alpha, trust, hadamard, block, rotated, out_dtype, round_input,
                                    decode_config(config), mask_format, group_size)
    return out, mask


@fake_quant.register_fake
def _fake_quant_meta(x, bits, alpha, trust, hadamard, block, rotated, out_dtype, round_input, config, mask_format,
                     group_size):
    k = x.shape[-1]
    out = x.new_empty(x.shape, dtype=out_dtype or x.dtype)
    mask = x.new_empty((*x.shape[:-1], k if mask_format == "bytes" else k // 8), dtype=torch.uint8)
    return out, mask


def _fake_quant_setup(ctx, inputs, output):
    x, _bits, _alpha, _trust, hadamard, block, rotated, _odt, _ri, config, _mf, _g = inputs
    ctx.save_for_backward(output[1])
    ctx.meta = (block, hadamard, rotated, x.dtype, list(config))


def _fake_quant_backward(ctx, grad, _grad_mask):
    (mask,) = ctx.saved_tensors
    block, hadamard, rotated, in_dtype, config = ctx.meta
    dx = torch.ops.quest_lab.fake_quant_bwd(grad, mask, block, hadamard, rotated, config, in_dtype)
    return (dx,) + (None,) * 11


fake_quant.register_autograd(_fake_quant_backward, setup_context=_fake_quant_setup)


# --- fake_quant_bwd --------------------------------------------------------------------------------

@torch.library.custom_op("quest_lab::fake_quant_bwd", mutates_args=())
def fake_quant_bwd(grad: Tensor, mask: Tensor, block: int, hadamard: bool, grad_rotated: bool, config: list[int],
                   out_dtype: torch.dtype) -> Tensor:
    return fake_quant_bwd_impl(grad, mask, block, hadamard, grad_rotated, decode_config(config), out_dtype)


@fake_quant_bwd.register_fake
def _fake_quant_bwd_meta(grad, mask, block, hadamard, grad_rotated, config, out_dtype):
    return grad.new_empty(grad.shape, dtype=out_dtype)
