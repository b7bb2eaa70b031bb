"""Law registry: one `Law` subclass per scaling law, registered with `@register_law("name")`.

A law declares its parameters (`ParamSpec`: bounds, starting grid, stage) and a vectorised
`log_predict(theta, design) -> (log L, d log L / d theta)`; the fitter (`quest_lab.analysis.fit`)
does the rest.  Parameters live in an *internal* space where the optimiser works: scale
parameters (A, B, E) as their logarithm (a = log A, …), exponents and efficiencies as is.

Adding a law is one class in one file: drop `analysis/law_<name>.py` with a decorated `Law`
subclass; `load_laws()` imports every `law_*` module of this package.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import numpy as np

from quest_lab.registry import class_registrar, import_plugins

BASE_LABEL = "bf16"  # precision label of full-precision (w = a = 16) runs; eff = 1 by definition


class InsufficientDataError(ValueError):
    """The data cannot determine the law: the message says what is missing."""


@dataclass(frozen=True)
class ParamSpec:
    """One fitted parameter.  `lower`, `upper` and `grid` are in internal space."""

    name: str  # public name: "A", "alpha", "eff[quest:w4a4]"
    lower: float
    upper: float
    grid: tuple[float, ...]
    stage: str = "base"  # "base": fitted on 16-bit runs first; "precision": fitted afterwards
    log: bool = False  # internal value is log(public value)
    neutral: float | None = None  # internal value that makes the term vanish (base-stage fits)

    def __post_init__(self) -> None:
        if self.stage not in ("base", "precision"):
            raise ValueError(f"stage={self.stage!r} is unknown; allowed: base, precision")
        if not self.lower < self.upper:
            raise ValueError(f"{self.name}: lower={self.lower} must be < upper={self.upper}")
        if not self.grid or any(not self.lower <= g <= self.upper for g in self.grid):
            raise ValueError(f"{self.name}: grid {self.grid} must be non-empty and inside [{self.lower}, {self.upper}]")

    def public(self, internal: float) -> float:
        return float(np.exp(internal)) if self.log else float(internal)

    def internal(self, public: float) -> float:
        return float(np.log(public)) if self.log else float(public)


@dataclass(frozen=True)
class Design:
    """The data a law sees, as arrays (one entry per run)."""

    logN: np.ndarray
    logD: np.ndarray
    w_bits: np.ndarray
    a_bits: np.ndarray
    label_idx: np.ndarray  # index into `labels`; -1 for full-precision (base) runs
    labels: tuple[str, ...]  # non-base precision labels "<quantizer>:w<w>a<a>[b<g>][g<G>]"
    y: np.ndarray  # log of the observed loss
    group: np.ndarray | None = None  # group size G per run (per row: the row length K; NaN: unknown)

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def is_base(self) -> np.ndarray:
        return self.label_idx < 0

    @property
    def groups(self) -> np.ndarray:
        """G per run (NaN where unknown)."""
        return np.full(self.n, np.nan) if self.group is None else self.group

    def subset(self, idx: np.ndarray) -> "Design":
        return Design(self.logN[idx], self.logD[idx], self.w_bits[idx], self.a_bits[idx],
                      self.label_idx[idx], self.labels, self.y[idx], self.groups[idx])

    def with_inputs(self, N: np.ndarray, D: np.ndarray, label: str | None = None,
                    w_bits: float = 16, a_bits: float = 16, group: float | np.ndarray | None = None) -> "Design":
        """A design for predictions at (N, D) for one precision label (None = base).  `group` (G)
        defaults to the label's group size; per row without `group` it is unknown (NaN)."""
        N, D = np.broadcast_arrays(np.asarray(N, float), np.asarray(D, float))
        k = -1 if label in (None, BASE_LABEL) else self.labels.index(label)
        n = N.size
        if group is None:
            from quest_lab.quant.specs import parse_precision_label

            g = parse_precision_label(label).group_size if label not in (None, BASE_LABEL) else None
            group = np.nan if g is None else float(g)
        G = np.broadcast_to(np.asarray(group, float), N.shape).ravel().copy()
        return Design(np.log(N.ravel()), np.log(D.ravel()), np.full(n, float(w_bits)),
                      np.full(n, float(a_bits)), np.full(n, k, dtype=int), self.labels, np.zeros(n), G)


def softmax_terms(*terms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """log Σ exp(t_i) and the weights exp(t_i − LSE), stably (broadcasting the terms)."""
    ts = np.broadcast_arrays(*terms)
    m = ts[0]
    for t in ts[1:]:
        m = np.maximum(m, t)
    exps = [np.exp(t - m) for t in ts]
    s = exps[0]
    for e in exps[1:]:
        s = s + e
    return m + np.log(s), [e / s for e in exps]


@dataclass(frozen=True)
class LawOption:
    """A law option (`fit --law-option NAME=VALUE`): its default and what it means."""

    default: float
    help: str


class Law:
    """Base class.  Subclasses set `name`, `formula` and implement `specs` and `log_predict`."""

    name: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    # True when the base (16-bit) part is E + A/N^α + B/D^β with internal params a, b, e, alpha, beta
    # first: the variable-projection solver applies to the base stage.
    chinchilla_base: ClassVar[bool] = True
    # Whether the law uses quantized runs at all (chinchilla: no, it is fitted on 16-bit runs only).
    uses_precision: ClassVar[bool] = True
    # The fit mode when none is asked for: "joint" (global search) or "staged" (an author's procedure).
    default_mode: ClassVar[str] = "joint"
    # Options the law takes (`fit --law-option NAME=VALUE`), e.g. parameter bounds.
    OPTIONS: ClassVar[dict[str, LawOption]] = {}

    def __init__(self, labels: Sequence[str] = (), options: Mapping[str, float] | None = None) -> None:
        self.labels = tuple(labels)
        self.options = self.resolve_options(options)

    @classmethod
    def resolve_options(cls, options: Mapping[str, float] | Sequence[tuple[str, float]] | None) -> dict[str, float]:
        """Defaults filled in; ValueError naming an unknown option or a non-finite value."""
        given = dict(options or {})
        unknown = sorted(set(given) - set(cls.OPTIONS))
        if unknown:
            allowed = ", ".join(sorted(cls.OPTIONS)) or "(none)"
            raise ValueError(f"{cls.name} law: unknown option(s) {', '.join(unknown)}; allowed: {allowed}")
        for k, v in given.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"{cls.name} law: option {k}={v!r} must be a finite number")
        return {k: float(given.get(k, opt.default)) for k, opt in cls.OPTIONS.items()}

    def specs(self) -> list[ParamSpec]:
        raise NotImplementedError

    def batch_log_predict(self, theta: np.ndarray, d: Design) -> tuple[np.ndarray, np.ndarray]:
        """For K parameter vectors `theta` (K, p): log L_pred (K, n) and its Jacobian (K, n, p)
        with respect to the internal parameters.  Vectorised so that thousands of starts of the
        grid are optimised together."""
        raise NotImplementedError

    def log_predict(self, theta: np.ndarray, d: Design) -> tuple[np.ndarray, np.ndarray]:
        """log L_pred (n,) and its Jacobian (n, p) for one parameter vector."""
        logp, jac = self.batch_log_predict(np.asarray(theta, float)[None, :], d)
        return logp[0], jac[0]

    # -- hooks a law may override ---------------------------------------------------------------
    def check_design(self, d: Design) -> None:
        """Raise InsufficientDataError when the runs lack something this law needs (default: nothing)."""

    def precision_blocks(self, d: Design) -> list[tuple[np.ndarray, np.ndarray]]:
        """Independent groups of precision parameters for the staged fit's second stage: (parameter
        indices, run indices) per group, each fitted on its own runs with the base fixed.  Default: one
        group holding every precision parameter and every run."""
        prec = np.array([s.stage == "precision" for s in self.specs()])
        return [(np.nonzero(prec)[0], np.arange(d.n))] if prec.any() else []

    def precision_starts(self, d: Design, theta: np.ndarray) -> np.ndarray:
        """Extra starts (K, p) for the precision stage, given the fitted base in `theta`; none by default."""
        return np.empty((0, len(self.specs())))

    def evidence_checks(self, d: Design) -> list[tuple[str, str, str]]:
        """(name, severity "blocking"/"caveat", message) identifiability checks of this law on these runs."""
        return []

    def extras(self, theta: np.ndarray, d: Design, samples: np.ndarray | None, level: float) -> dict | None:
        """Law-specific results for the payload (e.g. the qat law's weight/activation decomposition)."""
        return None

    # -- helpers shared by all laws ---------------------------------------------------------
    @property
    def param_names(self) -> list[str]:
        return [s.name for s in self.specs()]

    def predict(self, theta: np.ndarray, d: Design) -> np.ndarray:
        return np.exp(self.log_predict(np.asarray(theta, float), d)[0])

    def to_public(self, theta: np.ndarray) -> dict[str, float]:
        return {s.name: s.public(t) for s, t in zip(self.specs(), theta)}

    @staticmethod
    def columns(theta: np.ndarray, count: int) -> list[np.ndarray]:
        """The first `count` parameters of a (K, p) batch as (K, 1) columns that broadcast over runs."""
        return [theta[:, i:i + 1] for i in range(count)]

    def from_public(self, params: dict[str, float]) -> np.ndarray:
        missing = [s.name for s in self.specs() if s.name not in params]
        if missing:
            raise ValueError(f"{self.name} law: parameters {missing} missing from the stored fit")
        return np.array([s.internal(params[s.name]) for s in self.specs()])

    def joint_starts(self, d: Design) -> np.ndarray:
        """Extra starting points (K, p) for the joint fit that a law can compute from its structure
        (e.g. variable projection); none by default.  The generic global search runs regardless."""
        return np.empty((0, len(self.specs())))

    def clip(self, theta: np.ndarray) -> np.ndarray:
        """Internal parameter vectors moved inside the bounds."""
        specs = self.specs()
        return np.clip(theta, [s.lower for s in specs], [s.upper for s in specs])

    def eff_of(self, theta: np.ndarray, label: str, w_bits: float, a_bits: float) -> float:
        """Parameter efficiency of a precision (N_eff / N); NaN for laws without one."""
        return float("nan")

    def precision_label_of(self, name: str) -> tuple[str, str] | None:
        """'eff[quest:w4a4]' -> ('eff', 'quest:w4a4'); None for scalar parameters."""
        if name.endswith("]") and "[" in name:
            kind, label = name[:-1].split("[", 1)
            return kind, label
        return None


LAWS: dict[str, type[Law]] = {}


register_law = class_registrar(LAWS, "law")  # @register_law("quest") class QuestLaw(Law): ...


def load_laws() -> dict[str, type[Law]]:
    """Import every `law_*` module of this package (each registers its law) and return the registry."""
    import_plugins(__name__.rsplit(".", 1)[0], lambda m: m.startswith("law_") and m != "law_base")
    return LAWS


def get_law(name: str, labels: Sequence[str] = (), options: Mapping[str, float] | None = None) -> Law:
    laws = load_laws()
    if name not in laws:
        raise ValueError(f"law {name!r} is unknown; allowed: {', '.join(sorted(laws))}")
    return laws[name](labels, options)


# -- the chinchilla block shared by several laws ---------------------------------------------
def chinchilla_specs() -> list[ParamSpec]:
    """a, b ∈ {0, 5, …, 25}, α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1} (docs/design.md §5)."""
    ab = tuple(float(x) for x in range(0, 30, 5))
    ex = (0.0, 0.5, 1.0, 1.5, 2.0)
    e = (-1.0, -0.5, 0.0, 0.5, 1.0)
    return [
        ParamSpec("A", -10.0, 60.0, ab, log=True),
        ParamSpec("B", -10.0, 60.0, ab, log=True),
        ParamSpec("E", -10.0, 3.0, e, log=True),  # E ≥ 4.5e-5: the QuEST paper's own fit has E = 0.0014
        ParamSpec("alpha", 0.0, 4.0, ex),
        ParamSpec("beta", 0.0, 4.0, ex),
    ]
