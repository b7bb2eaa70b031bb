"""Quantizer base class, the `QUANTIZERS` registry and `build_quantizer`.

A quantizer fake-quantizes along the LAST dim with one scale per row (weights: per output row of
W (out, in); activations: per token row of x (…, in)) and returns a tensor in the original domain,
with the input's shape and dtype.  16 bits on a side means that side is off (identity).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

Role = Literal["weight", "activation"]
ROLES: tuple[str, ...] = ("weight", "activation")
BACKENDS: tuple[str, ...] = ("auto", "torch", "triton")
# forward GEMM of a rotated QuEST layer: "fake" = bf16 GEMM on fake-quantized x̂, Ŵ; "lowp" = the GEMM
# on the integer codes (FP8 / int8 tensor cores, `quest_lab.kernels.lowp`); "auto" = lowp on CUDA under
# bf16 autocast where the bits and shapes allow it, else fake
GEMMS: tuple[str, ...] = ("auto", "fake", "lowp")
OFF_BITS: float = 16
INT_BITS: tuple[float, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
_LOW_PRECISION = (torch.float16, torch.bfloat16)

QUANTIZERS: dict[str, type["Quantizer"]] = {}


def register_quantizer(*names: str) -> Callable[[type["Quantizer"]], type["Quantizer"]]:
    """Class decorator: `@register_quantizer("quest")` (several names register aliases)."""
    if not names:
        raise ValueError("register_quantizer needs at least one name")

    def deco(cls: type[Quantizer]) -> type[Quantizer]:
        for n in names:
            if n in QUANTIZERS and QUANTIZERS[n] is not cls:
                raise ValueError(f"quantizer name {n!r} is already registered to {QUANTIZERS[n].__name__}")
            QUANTIZERS[n] = cls
        cls.name = names[0]
        return cls

    return deco


def _fmt_bits(values) -> str:
    return ", ".join(f"{float(b):g}" for b in values)


def bits_match(bits: float, allowed) -> bool:
    return any(abs(float(bits) - float(a)) < 0.01 for a in allowed)


def row_rms(x: torch.Tensor) -> torch.Tensor:
    """σ = RMS along the last dim (keepdim), without gradient."""
    return x.detach().pow(2).mean(-1, keepdim=True).sqrt()


class Quantizer(nn.Module):
    """Base: subclasses set `option_defaults`, optionally `allowed_bits` / `check_option_values`,
    and implement `quantize(x)` (called only when bits < 16, with x in float32/float64)."""

    name: ClassVar[str] = ""
    option_defaults: ClassVar[dict[str, Any]] = {}

    # -- validation (also used by QuantConfig) -------------------------------------------------
    @classmethod
    def allowed_bits(cls, role: str) -> tuple[float, ...]:
        return INT_BITS + (OFF_BITS,)

    @classmethod
    def check_bits(cls, bits: float, role: str) -> None:
        allowed = cls.allowed_bits(role)
        if not isinstance(bits, (int, float)) or isinstance(bits, bool) or not bits_match(bits, allowed):
            side = "w_bits" if role == "weight" else "a_bits"
            raise ValueError(f"{side}={bits!r} is not supported by quantizer {cls.name!r} for {role}s; "
                             f"allowed: {_fmt_bits(allowed)} (16 = off)")

    @classmethod
    def resolve_options(cls, options: dict[str, Any] | None) -> dict[str, Any]:
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.option_defaults))
        if unknown:
            allowed = ", ".join(sorted(cls.option_defaults)) or "(none)"
            raise ValueError(f"unknown option(s) {unknown} for quantizer {cls.name!r}; allowed: {allowed}")
        resolved = {**cls.option_defaults, **options}
        cls.check_option_values(resolved)
        return resolved

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """Override to validate option values (raise ValueError naming the value and what is allowed)."""

    # -- module --------------------------------------------------------------------------------
    def __init__(self, bits: float, role: Role, features: int, options: dict[str, Any] | None = None,
                 backend: str = "auto", rows: int | None = None) -> None:
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"role={role!r} is unknown; allowed: {', '.join(ROLES)}")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
        if not isinstance(features, int) or features < 1:
            raise ValueError(f"features={features!r} must be a positive int (size of the quantized last dim)")
        self.check_bits(bits, role)
        self.bits = float(bits)
        self.role = role
        self.features = features
        self.rows = rows
        self.options = self.resolve_options(options)
        self.backend = backend

    @property
    def enabled(self) -> bool:
        return self.bits < OFF_BITS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if x.dtype in _LOW_PRECISION:
            return self.quantize(x.float()).to(x.dtype)
        return self.quantize(x)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.name}, {self.role}, bits={self.bits:g}" + (f", {opts}" if opts else "")


def build_quantizer(name: str, bits: float, role: Role, features: int, options: dict[str, Any] | None = None,
                    backend: str = "auto", rows: int | None = None) -> Quantizer:
    """Instantiate a registered quantizer; `rows` (= out_features) is needed by per-row learned state (LSQ)."""
    if name not in QUANTIZERS:
        raise ValueError(f"quantizer={name!r} is unknown; allowed: {', '.join(QUANTIZERS)}")
    return QUANTIZERS[name](bits, role, features, options, backend, rows=rows)
