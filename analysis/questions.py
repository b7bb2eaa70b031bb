"""Questions a researcher asks of a fitted law, as a registry (like laws): each turns parameter draws
into one scalar target whose bootstrap spread is the uncertainty `quest-lab suggest` reduces.

    q = parse_question("best-precision:memory=8e6")      # or "eff:label=quest:w4a4",
    target = q.bind(law, theta_hat)                       # "extrapolate:size=800M,tokens=8e10,label=quest:w4a4"
    values = target.values(thetas)                        # (K,) target per internal parameter vector

- `best-precision` (memory=M bits of weights, or compute=C under a compute cost model of the registry,
  `cost=train_flops` (default: BF16-equivalent FLOPs) or `cost=bops`; optional tokens=D for the memory
  budget, default the data-rich limit D → ∞): which precision gives the lowest loss.  The
  answer is categorical (its bootstrap distribution over precisions is reported); the scalar target is
  the loss gap between the two leading precisions at the point fit, whose CI excluding 0 settles it.
- `eff` (label=L): the law's parameter efficiency of precision L (N_eff / N).
- `extrapolate` (N=… or size=…, D=… or tokens=…, label=L, default bf16): the predicted loss there.

Costs come from the cost-model registry (`cost.py`) and the compute-optimal search is
`derived.optimal_points`, the one `quest-lab fit` answers with (one definition each).
Adding a question is one decorated class with `keys`, `__post_init__` checks and `bind`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from quest_lab.analysis import derived
from quest_lab.analysis.cost import CostModel, cost_models, get_cost_model
from quest_lab.analysis.data import label_bits
from quest_lab.analysis.law_base import BASE_LABEL, Design, Law
from quest_lab.registry import class_registrar

QUESTIONS: dict[str, type["Question"]] = {}
D_INF = 1e300  # "data-rich limit": the B/D^β term vanishes (as derived.optimal_precision_memory)


register_question = class_registrar(QUESTIONS, "question")  # @register_question("eff") class Eff(Question): ...


@dataclass(frozen=True)
class Target:
    """A question bound to a fitted law: `values(thetas (K, p)) -> (K,)` in `unit`."""

    description: str
    unit: str
    values: Callable[[np.ndarray], np.ndarray]
    # categorical answer per draw (best-precision: the winning label), None for plain scalars
    answers: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class Question:
    """Base class: subclasses are frozen dataclasses whose fields are the question's keys."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def bind(self, law: Law, theta_hat: np.ndarray) -> Target:
        raise NotImplementedError

    def spec(self) -> str:
        """The canonical `NAME:key=value,…` string (parse_question(q.spec()) == q)."""
        parts = [f"{f.name}={getattr(self, f.name):g}" if isinstance(getattr(self, f.name), float)
                 else f"{f.name}={getattr(self, f.name)}"
                 for f in dataclasses.fields(self) if getattr(self, f.name) is not None]
        return self.name + (":" + ",".join(parts) if parts else "")


def _known_label(law: Law, label: str) -> None:
    allowed = [BASE_LABEL, *law.labels]
    if label not in allowed:
        raise ValueError(f"precision {label!r} has no fitted runs; fitted precisions: {', '.join(allowed)}")


def point_design(law: Law, N, D, label: str) -> Design:
    """Design rows for predictions at (N, D) (broadcast) in precision `label` of a fitted law."""
    w, a = label_bits(label)
    empty = np.zeros(0)
    return Design(empty, empty, empty, empty, np.zeros(0, int), law.labels, empty).with_inputs(N, D, label, w, a)


def _log_loss(law: Law, thetas: np.ndarray, d: Design) -> np.ndarray:
    return law.batch_log_predict(np.atleast_2d(thetas), d)[0]


@register_question("eff")
@dataclass(frozen=True)
class Eff(Question):
    summary: ClassVar[str] = "eff of a precision (N_eff/N): eff:label=quest:w4a4"
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            raise ValueError("eff needs label=<quantizer>:w<w>a<a>, e.g. eff:label=quest:w4a4")
        label_bits(self.label)

    def bind(self, law: Law, theta_hat: np.ndarray) -> Target:
        if self.label not in law.labels:
            _known_label(law, self.label)
            raise ValueError(f"eff of {self.label!r} is 1 by definition; ask about a quantized precision "
                             f"({', '.join(law.labels) or 'none fitted'})")
        w, a = label_bits(self.label)
        probe = law.eff_of(np.asarray(theta_hat, float), self.label, w, a)
        if not np.isfinite(probe):
            raise ValueError(f"the {law.name} law has no parameter efficiency; ask another question")

        def values(thetas: np.ndarray) -> np.ndarray:
            return np.array([law.eff_of(t, self.label, w, a) for t in np.atleast_2d(thetas)])

        return Target(f"eff({self.label})", "N_eff/N", values)


@register_question("extrapolate")
@dataclass(frozen=True)
class Extrapolate(Question):
    summary: ClassVar[str] = "loss at (N, D, P): extrapolate:size=800M,tokens=8e10,label=quest:w4a4 (or N=…, D=…)"
    N: float | None = None
    D: float | None = None
    size: str | None = None
    tokens: float | None = None
    label: str = BASE_LABEL

    def __post_init__(self) -> None:
        from quest_lab.sizes import non_embedding_params

        if (self.N is None) == (self.size is None):
            raise ValueError("extrapolate needs exactly one of N=<params> or size=<registered size>")
        if (self.D is None) == (self.tokens is None):
            raise ValueError("extrapolate needs exactly one of D=<tokens> or tokens=<tokens>")
        if self.size is not None:
            non_embedding_params(self.size)  # ValueError naming the allowed sizes
        for key in ("N", "D", "tokens"):
            v = getattr(self, key)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(f"extrapolate: {key}={v!r} must be a positive number")
        label_bits(self.label)

    @property
    def n_params(self) -> float:
        from quest_lab.sizes import non_embedding_params

        return float(self.N if self.N is not None else non_embedding_params(self.size))

    @property
    def n_tokens(self) -> float:
        return float(self.D if self.D is not None else self.tokens)

    def bind(self, law: Law, theta_hat: np.ndarray) -> Target:
        _known_label(law, self.label)
        d = point_design(law, self.n_params, self.n_tokens, self.label)

        def values(thetas: np.ndarray) -> np.ndarray:
            return np.exp(_log_loss(law, thetas, d)[:, 0])

        return Target(f"loss at N={self.n_params:.3g}, D={self.n_tokens:.3g}, {self.label}", "loss", values)


@register_question("best-precision")
@dataclass(frozen=True)
class BestPrecision(Question):
    summary: ClassVar[str] = ("best precision at a memory (bits) or compute budget: best-precision:memory=8e6"
                              "[,tokens=1e8] or best-precision:compute=1e15[,cost=train_flops|bops]")
    memory: float | None = None
    compute: float | None = None
    tokens: float | None = None  # memory budget only: train every precision on D tokens (default D → ∞)
    cost: str | None = None  # compute budget only: a cost model that scales with N·D (default train_flops)

    def __post_init__(self) -> None:
        if (self.memory is None) == (self.compute is None):
            raise ValueError("best-precision needs exactly one of memory=<bits> or compute=<FLOPs>")
        if self.tokens is not None and self.compute is not None:
            raise ValueError("best-precision: tokens= applies to a memory budget only (compute sets N and D)")
        if self.cost is not None:
            if self.compute is None:
                raise ValueError("best-precision: cost= applies to a compute budget only (memory is w_bits·N)")
            allowed = [k for k, m in cost_models().items() if m.scales_with == "ND"]
            if self.cost not in allowed:
                raise ValueError(f"best-precision: cost={self.cost!r} is not a compute cost model; "
                                 f"allowed: {', '.join(allowed)}")
        for key in ("memory", "compute", "tokens"):
            v = getattr(self, key)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(f"best-precision: {key}={v!r} must be a positive number")

    def losses(self, law: Law, thetas: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Labels and the loss (K, labels) of each precision at the budget."""
        labels = [BASE_LABEL, *law.labels]
        thetas = np.atleast_2d(thetas)
        out = np.empty((len(thetas), len(labels)))
        model = self.cost_model
        for j, label in enumerate(labels):
            w, a = label_bits(label)
            if self.memory is not None:
                N = self.memory / float(model.factor(w, a))
                out[:, j] = np.exp(_log_loss(law, thetas, point_design(law, N, self.tokens or D_INF, label))[:, 0])
            else:
                out[:, j] = derived.optimal_points(law, thetas, label, model, self.compute)["loss"]
        return labels, out

    @property
    def cost_model(self) -> CostModel:
        return get_cost_model("memory" if self.memory is not None else self.cost or "train_flops")

    def bind(self, law: Law, theta_hat: np.ndarray) -> Target:
        labels, hat = self.losses(law, theta_hat)
        if len(labels) < 2:
            raise ValueError("best-precision needs at least two fitted precisions")
        order = np.argsort(hat[0])
        best, second = int(order[0]), int(order[1])
        budget = (f"memory {self.memory:.3g} bits" if self.memory is not None
                  else f"{self.cost_model.name} {self.compute:.3g} {self.cost_model.unit}")

        def values(thetas: np.ndarray) -> np.ndarray:
            loss = self.losses(law, thetas)[1]
            return loss[:, second] - loss[:, best]

        def answers(thetas: np.ndarray) -> np.ndarray:
            return np.array(labels, dtype=object)[np.argmin(self.losses(law, thetas)[1], axis=1)]

        return Target(f"best precision at {budget}: loss({labels[second]}) − loss({labels[best]})",
                      "loss gap", values, answers)


def _number(key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{key}={text!r} is not a number (e.g. {key}=1e9)") from None


def parse_question(text: str) -> Question:
    """'NAME[:key=value,…]' -> a Question; ValueError (one line) naming what is allowed."""
    name, _, rest = text.strip().partition(":")
    if name not in QUESTIONS:
        raise ValueError(f"question {name!r} is unknown; allowed: {', '.join(sorted(QUESTIONS))} "
                         "(e.g. best-precision:memory=8e6, eff:label=quest:w4a4)")
    cls = QUESTIONS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, object] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in fields:
            raise ValueError(f"question {name}: {item!r} is not key=value with a key in {', '.join(fields)}")
        kwargs[key] = value if "str" in str(fields[key].type) else _number(key, value)
    return cls(**kwargs)
