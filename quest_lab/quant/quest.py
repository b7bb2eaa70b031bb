"""QuEST (docs/design.md §3): Hadamard rotation + Gaussian-MSE clip + trust-masked gradient.

This module is THE torch reference of the QuEST math: the torch backend runs it, and the Triton
kernels' references (`quest_lab.kernels.reference`) wrap it in the kernels' formats.  An independent
float64 oracle written straight from the paper's formulas lives in tests/oracle.py.

Grid: with σ = RMS(row), s = α_b·σ + 1e-8, Δ = 2s/(2^b − 1),
    x̂ = (round(clamp(x, −s, s)/Δ + ½) − ½)·Δ,
the integer index clamped to [−(2^{b−1} − 1), 2^{b−1}], so the grid is exactly the 2^b points
−s + kΔ, k = 0 … 2^b − 1 (symmetric around 0, ±s included; no zero level).
Trust mask M = 1[|x̂ − x| ≤ T·σ], T default = α_b/(2^b − 1) = half a step in σ units.
With Hadamard (block-diagonal along K): x̂ = Q(x·H)·Hᵀ and ∂x = ((∂out·H) ⊙ M)·Hᵀ.

Groups (`group`/`group_size` G, docs/design.md §3): the rotation stays block-diagonal along the whole
row; the grid (σ, s, Δ, and T·σ of the mask) is then per group of G consecutive *rotated* values.
G a multiple of the block: σ of a group = RMS of its unrotated values (H is orthonormal per block).
G smaller than the block: σ is the RMS of G of the block's rotated coordinates.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, NamedTuple

import torch

from quest_lab.quant.base import Quantizer, per_group, register_quantizer, row_rms
from quest_lab.quant.estimators import MaskedSTE
from quest_lab.quant.gaussian import gaussian_alpha
from quest_lab.quant.hadamard import hadamard_block_for, hadamard_transform
from quest_lab.quant.specs import INT_BITS, bits_match

log = logging.getLogger(__name__)


def grid_index(x: torch.Tensor, s: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer index j of x on the `levels`-point (even) grid (j − ½)·Δ, Δ = 2s/(levels − 1):
    round(clamp(x, −s, s)/Δ + ½) (half to even) clamped to [−(levels/2 − 1), levels/2]."""
    delta = 2 * s / (levels - 1)
    half = levels // 2
    return torch.round(torch.clamp(x, -s, s) / delta + 0.5).clamp_(-(half - 1), half)


def uniform_fake_quant(x: torch.Tensor, s: torch.Tensor, levels: int) -> torch.Tensor:
    """Round x to the `levels`-point (even) uniform grid −s + kΔ on [−s, s] (docs/design.md §3 formula)."""
    return (grid_index(x, s, levels) - 0.5) * (2 * s / (levels - 1))


def default_trust(bits: int, alpha: float | None = None) -> float:
    """Half a quantization step, in σ units: α/(2^b − 1) (α: the Gaussian clip of `bits` by default)."""
    a = gaussian_alpha(bits) if alpha is None else float(alpha)
    return a / (2 ** bits - 1)


class QuestGrid(NamedTuple):
    q: torch.Tensor  # x̂ = (j − ½)·Δ, x's shape
    mask: torch.Tensor  # trust mask M = 1[|x̂ − x| ≤ T·σ] (bool)
    delta: torch.Tensor  # Δ per row, (..., 1)
    j: torch.Tensor  # grid index (float), x's shape


def quest_grid(y: torch.Tensor, bits: int, alpha: float | None = None, trust: float | None = None) -> QuestGrid:
    """QuEST's grid on the rows of y (already rotated, or not): σ = RMS(row), s = α·σ + 1e-8,
    Δ = 2s/(2^b − 1), j = grid index, x̂ = (j − ½)Δ, M = 1[|x̂ − y| ≤ T·σ] (T: half a step)."""
    a = gaussian_alpha(bits) if alpha is None else float(alpha)
    t = default_trust(bits, a) if trust is None else float(trust)
    levels = 2 ** bits
    sigma = row_rms(y)
    s = a * sigma + 1e-8
    delta = 2 * s / (levels - 1)
    j = grid_index(y, s, levels)
    q = (j - 0.5) * delta
    return QuestGrid(q, (q - y).abs() <= t * sigma, delta, j)


def _quest_grid(x: torch.Tensor, bits: int, trust: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = quest_grid(x, bits, trust=trust)
    return g.q, g.mask


def _check_int_bits(bits: float) -> int:
    if not bits_match(bits, INT_BITS):
        raise ValueError(f"bits={bits!r} not supported by QuEST; allowed: 1, 2, 3, 4, 5, 6, 7, 8")
    return int(round(bits))


def quest_quantize_rotated(x: torch.Tensor, bits: float, trust: float | None = None,
                           block: int = 128, group: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Q(x·H) left in the rotated domain (with the trust estimator): ∂x = (∂out ⊙ M)·Hᵀ.

    Q(x·H)·Q(W·H)ᵀ equals the de-rotated product, so a GEMM can skip the two inverse rotations.
    `group`: one grid per group of that many rotated values (None: per row).
    """
    b = _check_int_bits(bits)
    t = default_trust(b) if trust is None else float(trust)
    x_r = hadamard_transform(x, hadamard_block_for(x.shape[-1], block))
    return MaskedSTE.apply(x_r, per_group(functools.partial(_quest_grid, bits=b, trust=t), group))


def quest_quantize(x: torch.Tensor, bits: float, trust: float | None = None, hadamard: bool = True,
                   block: int = 128, group: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch QuEST fake-quantization along the last dim.

    Returns (x̂ in the original domain, trust mask M in the domain that was quantized — the rotated
    one when `hadamard`).  x̂ carries the trust gradient estimator.  `group`: σ, s, Δ per group of
    that many consecutive (rotated) values instead of per row.
    """
    b = _check_int_bits(bits)
    t = default_trust(b) if trust is None else float(trust)
    blk = hadamard_block_for(x.shape[-1], block) if hadamard else 1
    x_r = hadamard_transform(x, blk)
    x_hat_r, mask = MaskedSTE.apply(x_r, per_group(functools.partial(_quest_grid, bits=b, trust=t), group))
    return hadamard_transform(x_hat_r, blk), mask  # H symmetric: applying H again is ·Hᵀ


@functools.lru_cache(maxsize=1)
def _triton_kernel() -> Callable[..., torch.Tensor] | None:
    try:
        from quest_lab.kernels import quest_fake_quant  # lazy: written separately, needs triton
    except Exception as exc:  # ImportError, or triton failing to initialise
        log.info("Triton QuEST kernel unavailable (%s); using the torch path", exc)
        return None
    return quest_fake_quant


@register_quantizer("quest")
class QuestQuantizer(Quantizer):
    """QuEST; options (spec): hadamard (bool), trust (T in σ units; None = half a step), hadamard_block;
    `group_size` (QuantConfig): one grid per group of G rotated values (Triton: `kernel_group`)."""

    def _use_triton(self, x: torch.Tensor) -> bool:
        if self.backend == "torch":
            return False
        if self.backend == "triton":
            if _triton_kernel() is None:
                raise RuntimeError("backend='triton' requested but quest_lab.kernels.quest_fake_quant "
                                   "cannot be imported; use backend='torch' or 'auto'")
            return True
        if not (x.is_cuda and _triton_kernel() is not None):
            return False
        # the kernels need blocks of >= 16 columns: tiny K (or no power-of-two divisor) stays on torch;
        # any longer K is fine (the default two-pass forward and flat backward loop over the row)
        k = x.shape[-1]
        return hadamard_block_for(k, self.options["hadamard_block"] if self.options["hadamard"] else 128) >= 16

    def kernel_triple(self) -> tuple[int, float, float]:
        """(bits, alpha, trust) as the kernels take them."""
        b = int(round(self.bits))
        trust = self.options["trust"]
        return b, gaussian_alpha(b), default_trust(b) if trust is None else float(trust)

    def kernel_block(self, k: int) -> int:
        """Hadamard block for a last dim K (the kernel tiles rows by it even without rotation)."""
        return hadamard_block_for(k, self.options["hadamard_block"])

    @property
    def kernel_group(self) -> int | None:
        """Group size as the kernels take it: None for per row (also when G = K)."""
        return None if self.per_row else self.group_size

    def _kernel_args(self, x: torch.Tensor) -> dict[str, Any]:
        b, alpha, trust = self.kernel_triple()
        return {"bits": b, "alpha": alpha, "trust": trust, "block": self.kernel_block(x.shape[-1]),
                "group_size": self.kernel_group}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled and self._use_triton(x):
            return _triton_kernel()(x, hadamard=self.options["hadamard"], **self._kernel_args(x))
        return super().forward(x)

    @property
    def rotates(self) -> bool:
        """True when this quantizer works in a Hadamard-rotated basis (enabled, hadamard=True)."""
        return self.enabled and self.options["hadamard"]

    def forward_rotated(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        """Q(x·H) in the rotated basis (requires `rotates`); x's shape, dtype `out_dtype` (default x's;
        the Triton kernel writes it directly, e.g. bf16 under autocast, with ∂x still in x's dtype).
        With out_dtype bf16 an fp32 x is rounded to bf16 first, as autocast would before the GEMM."""
        if not self.rotates:
            raise RuntimeError("forward_rotated needs an enabled QuEST quantizer with hadamard=True")
        round_input = out_dtype == torch.bfloat16 and x.dtype == torch.float32
        if self._use_triton(x):
            from quest_lab.kernels import quest_fake_quant_rotated

            return quest_fake_quant_rotated(x, out_dtype=out_dtype, round_input=round_input, **self._kernel_args(x))
        if round_input:
            x = x.to(torch.bfloat16)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        o = self.options
        return quest_quantize_rotated(xf, self.bits, o["trust"], o["hadamard_block"],
                                      self.group_size)[0].to(out_dtype or x.dtype)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        o = self.options
        return quest_quantize(x, self.bits, o["trust"], o["hadamard"], o["hadamard_block"], self.group_size)[0]
