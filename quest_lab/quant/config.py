"""`QuantConfig`: which quantizer, at which bit-widths, with which options and backend."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quest_lab.quant.base import BACKENDS, GEMMS, OFF_BITS, QUANTIZERS


@dataclass(frozen=True)
class QuantConfig:
    """Quantization of one linear layer's weight (w_bits) and input activations (a_bits).

    16 bits on a side means that side is not quantized.  `options` are quantizer-specific (see each
    quantizer's `option_defaults`); `backend` is "auto" (Triton on CUDA when importable, else torch),
    "torch" or "triton" (only QuEST has a Triton path).  `gemm`: how a layer whose both sides are
    Hadamard-rotated QuEST runs its forward matmul (see `GEMMS`; an execution detail like `backend`).
    """

    name: str = "bf16"
    w_bits: float = 16
    a_bits: float = 16
    options: dict[str, Any] = field(default_factory=dict)
    backend: str = "auto"
    gemm: str = "auto"

    def __post_init__(self) -> None:
        if self.name not in QUANTIZERS:
            raise ValueError(f"quantizer={self.name!r} is unknown; allowed: {', '.join(QUANTIZERS)}")
        cls = QUANTIZERS[self.name]
        cls.check_bits(self.w_bits, "weight")
        cls.check_bits(self.a_bits, "activation")
        if not isinstance(self.options, dict):
            raise ValueError(f"options={self.options!r} must be a mapping of option name to value")
        cls.resolve_options(self.options)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
        if self.gemm not in GEMMS:
            raise ValueError(f"gemm={self.gemm!r} is unknown; allowed: {', '.join(GEMMS)}")

    @property
    def enabled(self) -> bool:
        return self.w_bits < OFF_BITS or self.a_bits < OFF_BITS

    @property
    def label(self) -> str:
        return f"{self.name}:w{self.w_bits:g}a{self.a_bits:g}" if self.enabled else "bf16"
