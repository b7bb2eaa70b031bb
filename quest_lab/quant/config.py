"""`QuantConfig`: which quantizer, at which bit-widths, with which options, backend and GEMM (torch-free)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quest_lab.quant.specs import BACKENDS, GEMMS, OFF_BITS, get_spec, precision_label


@dataclass(frozen=True)
class QuantConfig:
    """Quantization of one linear layer's weight (w_bits) and input activations (a_bits).

    16 bits on a side means that side is not quantized.  `options` are quantizer-specific (see its
    spec, `quest-lab quantizers`); `backend` is "auto" (Triton on CUDA when importable, else torch),
    "torch" or "triton" (only QuEST has a Triton path).  `gemm`: how a layer whose both sides are
    Hadamard-rotated QuEST runs its forward matmul (see `GEMMS`; an execution detail like `backend`).
    `group_size`: one scale per group of G consecutive inputs along K (a power of two >= 2, for
    quantizers whose spec has `groups`); None = the quantizer's own granularity (per row; lsq per
    tensor).  Part of the label (`quest:w4a4g32`).  The low-precision GEMM needs per-row scales, so
    gemm="lowp" is refused with a group size and gemm="auto" runs the fake-quant GEMM for grouped layers.
    Validated once, here (that G divides each layer's K is checked when the layer is built); the
    quantizers trust it.
    """

    name: str = "bf16"
    w_bits: float = 16
    a_bits: float = 16
    options: dict[str, Any] = field(default_factory=dict)
    backend: str = "auto"
    gemm: str = "auto"
    group_size: int | None = None

    def __post_init__(self) -> None:
        spec = get_spec(self.name)
        spec.check_bits(self.w_bits, "weight")
        spec.check_bits(self.a_bits, "activation")
        if not isinstance(self.options, dict):
            raise ValueError(f"options={self.options!r} must be a mapping of option name to value")
        spec.resolve_options(self.options)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
        if self.gemm not in GEMMS:
            raise ValueError(f"gemm={self.gemm!r} is unknown; allowed: {', '.join(GEMMS)}")
        spec.check_group_size(self.group_size)
        if self.group_size is not None and self.gemm == "lowp":
            raise ValueError(f"gemm='lowp' needs one scale per row (FP8/int8 row-scaled GEMM), not group_size="
                             f"{self.group_size}; allowed: gemm='auto' or 'fake' (the fake-quant GEMM) with groups")

    @property
    def enabled(self) -> bool:
        return self.w_bits < OFF_BITS or self.a_bits < OFF_BITS

    @property
    def label(self) -> str:
        return precision_label(self.name, self.w_bits, self.a_bits, self.group_size)
