"""Quantizer base class, the implementation registry and `build_quantizer`.

A quantizer fake-quantizes along the LAST dim, most with one scale per row (weights: per output row
of W (out, in); activations: per token row of x (…, in)); `lsq` (weights and activations) and the
`ternary` weights use one scale per tensor, as their papers do.  With a `group_size` G (specs with
`groups`), the scale is per group of G consecutive elements along the last dim instead: `per_group`
runs the per-row rule on the (..., K/G, G) view (docs/design.md §3).  It returns a tensor in the
original domain, with the input's shape and dtype.  16 bits on a side means that side is off (identity).
What a quantizer accepts (bits, options) is its torch-free `QuantizerSpec` (quant/specs.py).
"""
from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from quest_lab.quant.specs import BACKENDS, OFF_BITS, ROLES, QuantizerSpec, get_spec

log = logging.getLogger(__name__)

_LOW_PRECISION = (torch.float16, torch.bfloat16)

QUANTIZERS: dict[str, type["Quantizer"]] = {}  # spec name (and aliases) -> implementation class


def register_quantizer(name: str) -> Callable[[type["Quantizer"]], type["Quantizer"]]:
    """Class decorator binding an implementation to the registered spec `name` (and its aliases)."""
    spec = get_spec(name)

    def deco(cls: type[Quantizer]) -> type[Quantizer]:
        for n in (spec.name, *spec.aliases):
            if n in QUANTIZERS and QUANTIZERS[n] is not cls:
                raise ValueError(f"quantizer {n!r} already has an implementation: {QUANTIZERS[n].__name__}")
            QUANTIZERS[n] = cls
        cls.spec = spec
        cls.name = spec.name
        return cls

    return deco


def implementation(name: str) -> type["Quantizer"]:
    """The implementation class of a registered spec, importing its module on first use."""
    spec = get_spec(name)
    if name not in QUANTIZERS:
        module, _, attr = spec.impl.partition(":")
        importlib.import_module(module)
        if name not in QUANTIZERS:
            raise RuntimeError(f"{spec.impl} did not register an implementation for quantizer {name!r}")
    return QUANTIZERS[name]


def row_rms(x: torch.Tensor) -> torch.Tensor:
    """σ = RMS along the last dim (keepdim), without gradient."""
    return x.detach().pow(2).mean(-1, keepdim=True).sqrt()


def per_group(fn: Callable[..., Any], group: int | None) -> Callable[..., Any]:
    """`fn` (a per-row rule along the last dim, returning a tensor or a tuple of tensors of its input's
    shape) applied to each group of `group` consecutive elements: (..., K) → (..., K/G, G) → fn → back.
    None: `fn` itself (per row)."""
    if group is None:
        return fn

    def grouped(x: torch.Tensor) -> Any:
        out = fn(x.unflatten(-1, (x.shape[-1] // group, group)))
        return tuple(o.flatten(-2) for o in out) if isinstance(out, tuple) else out.flatten(-2)

    return grouped


class Quantizer(nn.Module):
    """Base: subclasses implement `quantize(x)` (called only when bits < 16, with x in float32/float64);
    their spec says which bits and options they accept."""

    name: ClassVar[str] = ""
    spec: ClassVar[QuantizerSpec]

    def __init__(self, bits: float, role: str, features: int, options: dict[str, Any] | None = None,
                 backend: str = "auto", rows: int | None = None, group_size: int | None = None) -> None:
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"role={role!r} is unknown; allowed: {', '.join(ROLES)}")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
        if not isinstance(features, int) or features < 1:
            raise ValueError(f"features={features!r} must be a positive int (size of the quantized last dim)")
        self.bits = self.spec.check_bits(bits, role)
        self.role = role
        self.features = features
        self.rows = rows
        self.options = self.spec.resolve_options(options)
        self.backend = backend
        self.group_size = self.spec.check_group_size(group_size)
        if self.group_size is not None and features % self.group_size:
            raise ValueError(f"group_size={self.group_size} does not divide this layer's K={features}; allowed: "
                             f"a power of two dividing {features}, or null")

    @property
    def per_row(self) -> bool:
        """One scale per row: no group size, or G = K (the same thing)."""
        return self.group_size is None or self.group_size == self.features

    def grouped(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` applied per group of `group_size` along the last dim (`per_group`)."""
        return per_group(fn, self.group_size)

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
        group = f", group_size={self.group_size}" if self.group_size else ""
        return f"{self.name}, {self.role}, bits={self.bits:g}{group}" + (f", {opts}" if opts else "")


def build_quantizer(name: str, bits: float, role: str, features: int, options: dict[str, Any] | None = None,
                    backend: str = "auto", rows: int | None = None, group_size: int | None = None) -> Quantizer:
    """Instantiate a registered quantizer; `rows` (= out_features) is needed by learned per-row state
    (LSQ groups, SLB logits); `group_size`: one scale per group of G along the last dim (None: per row)."""
    return implementation(name)(bits, role, features, options, backend, rows=rows, group_size=group_size)
