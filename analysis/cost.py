"""Cost models: what a run (N, D, w_bits, a_bits) costs, as a registry like the laws.

Every Pareto axis and every derived answer names the cost model it used.  A cost model is a frozen
dataclass registered with `@register_cost("name")`; its cost is either per parameter (`scales_with
= "N"`: memory) or per parameter-token (`"ND"`: compute), times a factor of the precision, so the
optimal N and D at a budget follow from the law alone (derived.py).

- `memory`: bits of the non-embedding weights, w_bits·N (docs/design.md §7).  Activations, optimizer
  state and embeddings are not counted: the question is the deployed size of the quantized weights.
- `bops`: bit-operations of the forward matmuls, N·D·w_bits·a_bits: one multiply-accumulate per
  parameter per token, each costing w·a bit-operations (the BOP count of van Baalen et al. 2020,
  "Bayesian Bits", arXiv 2005.07093).  A theoretical count with no backward pass and no hardware:
  it charges W2A2 1/64 of BF16, so low precisions win by construction.  Use it as a lower bound.
- `train_flops`: BF16-equivalent training FLOPs of QuEST-style training: the forward matmuls
  (2ND of the 6ND, Kaplan et al. 2020, arXiv 2001.08361) run at the hardware rate of max(w, a) bits,
  the backward (4ND) in full precision, as QuEST (arXiv 2502.05003) and our `train()` never
  quantize gradients.  Default rates (docs/design.md §7): 16 bits → 1, 8 → ½, 4 → ¼; nothing below
  4 bits is faster than 4 (a w-bit operand runs on the narrowest format ≥ w bits in the table).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from quest_lab.registry import class_registrar

# (bits, relative cost of a matmul at that width vs BF16); docs/design.md §7
DEFAULT_RATES: tuple[tuple[float, float], ...] = ((4.0, 0.25), (8.0, 0.5), (16.0, 1.0))
FORWARD_SHARE = 2.0  # forward FLOPs per parameter-token (of 6: Kaplan et al. 2020, Table 1)
BACKWARD_SHARE = 4.0  # backward FLOPs per parameter-token, full precision in QuEST training


@dataclass(frozen=True)
class CostModel:
    """Base class: set the ClassVars and implement `factor`."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # axis title, e.g. "training compute"
    unit: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    scales_with: ClassVar[str] = "ND"  # "N": cost = N·factor; "ND": cost = N·D·factor

    def factor(self, w_bits, a_bits) -> np.ndarray:
        raise NotImplementedError

    def cost(self, N, D, w_bits, a_bits) -> np.ndarray:
        per = np.asarray(N, float) * (np.asarray(D, float) if self.scales_with == "ND" else 1.0)
        return per * self.factor(w_bits, a_bits)

    @property
    def axis_label(self) -> str:
        return f"{self.title} [{self.unit}] — cost model '{self.name}': {self.formula}"

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def describe(self) -> dict[str, Any]:
        """JSON-ready record of the model (stored with every fit, read back by the report)."""
        return {"name": self.name, "title": self.title, "unit": self.unit, "formula": self.formula,
                "citation": self.citation, "scales_with": self.scales_with,
                "params": {k: [list(r) for r in v] if isinstance(v, tuple) else v for k, v in self.params().items()}}


COST_MODELS: dict[str, type[CostModel]] = {}


register_cost = class_registrar(COST_MODELS, "cost model")  # @register_cost("memory") class Memory(CostModel): ...


@register_cost("memory")
@dataclass(frozen=True)
class Memory(CostModel):
    title = "model memory"
    unit = "bits"
    formula = "w_bits·N (non-embedding weights; activations not counted)"
    citation = "docs/design.md §7; QuEST (arXiv 2502.05003) iso-memory comparisons"
    scales_with = "N"

    def factor(self, w_bits, a_bits) -> np.ndarray:
        return np.asarray(w_bits, float) * np.ones_like(np.asarray(a_bits, float))


@register_cost("bops")
@dataclass(frozen=True)
class Bops(CostModel):
    title = "forward bit-operations"
    unit = "BOPs"
    formula = "N·D·w_bits·a_bits (forward multiply-accumulates × w·a; theoretical, no backward, no hardware)"
    citation = "van Baalen et al. 2020 (Bayesian Bits, arXiv 2005.07093), BOP count"

    def factor(self, w_bits, a_bits) -> np.ndarray:
        return np.asarray(w_bits, float) * np.asarray(a_bits, float)


def validate_rates(rates) -> tuple[tuple[float, float], ...]:
    """Rate table as ((bits, relative cost), …) sorted by bits; raises ValueError with what is allowed."""
    try:
        table = tuple(sorted((float(b), float(r)) for b, r in rates))
    except (TypeError, ValueError):
        raise ValueError(f"rates={rates!r} must be pairs (bits, relative cost), e.g. ((4, 0.25), (8, 0.5), (16, 1))") from None
    if not table or table[-1][0] < 16:
        raise ValueError(f"rates={table} must include a width >= 16 bits (the BF16 rate)")
    if any(not (b > 0 and 0 < r <= 1) for b, r in table):
        raise ValueError(f"rates={table}: bits must be > 0 and relative costs in (0, 1]")
    if len({b for b, _ in table}) != len(table):
        raise ValueError(f"rates={table} lists a width twice")
    if any(r1 > r2 for (_, r1), (_, r2) in zip(table, table[1:])):
        raise ValueError(f"rates={table}: a narrower format cannot cost more than a wider one")
    return table


@register_cost("train_flops")
@dataclass(frozen=True)
class TrainFlops(CostModel):
    title = "training compute"
    unit = "BF16-equivalent FLOPs"
    formula = "2·N·D·rate(max(w,a)) + 4·N·D (forward at the hardware rate, backward in full precision)"
    citation = ("Kaplan et al. 2020 (arXiv 2001.08361) 6ND split; QuEST (arXiv 2502.05003): gradients unquantized; "
                "rates per docs/design.md §7")
    rates: tuple[tuple[float, float], ...] = DEFAULT_RATES

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", validate_rates(self.rates))

    def rate(self, bits) -> np.ndarray:
        """Relative matmul cost at `bits`: the narrowest table width >= bits (so < 4 bits costs as 4)."""
        widths = np.array([b for b, _ in self.rates])
        costs = np.array([r for _, r in self.rates])
        idx = np.searchsorted(widths, np.asarray(bits, float) - 1e-9)
        return costs[np.minimum(idx, len(costs) - 1)]

    def factor(self, w_bits, a_bits) -> np.ndarray:
        return FORWARD_SHARE * self.rate(np.maximum(w_bits, a_bits)) + BACKWARD_SHARE


def cost_models(**options) -> dict[str, CostModel]:
    """One instance of every registered cost model; `options` go to the models that have such a field
    (e.g. rates=… to train_flops)."""
    out = {}
    for name, cls in COST_MODELS.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        out[name] = cls(**{k: v for k, v in options.items() if k in fields and v is not None})
    return out


def get_cost_model(name: str, **options) -> CostModel:
    if name not in COST_MODELS:
        raise ValueError(f"cost model {name!r} is unknown; allowed: {', '.join(COST_MODELS)}")
    return cost_models(**options)[name]


def from_description(desc: dict[str, Any]) -> CostModel:
    """Rebuild a cost model from `describe()` (stored fits); unknown parameters are ignored."""
    params = {k: tuple(tuple(r) for r in v) if isinstance(v, list) else v for k, v in (desc.get("params") or {}).items()}
    return get_cost_model(desc["name"], **params)
