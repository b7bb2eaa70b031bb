"""Grid expansion and run identity: Sweep -> RunConfigs -> run_ids -> the plan (what is left to run).

run_id = `RunConfig.run_id(data_identity)`: a hash of the resolved config, the corpus/tokenizer
identity (`quest_lab.corpus.data_identity`) and the schema version.  The plan subtracts runs the
store already holds as completed/diverged (and failed, unless `rerun_failed`).
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quest_lab.run import RunConfig, RunResult
from quest_lab.sweep.spec import JOINT_BITS, SpecError, Sweep

log = logging.getLogger(__name__)

DataIdentityFn = Callable[[str, str, int], str]
DONE_STATUSES = ("completed", "diverged")
DEFAULT_MAX_GRID = 10_000  # points; `quest-lab sweep --max-grid N` raises it


def _matches(resolved: dict[str, Any], pattern: dict[str, Any]) -> bool:
    """Does an exclude pattern match a resolved point?  `bits` in a pattern means w_bits+a_bits."""
    pattern = dict(pattern)
    if JOINT_BITS in pattern:
        pattern["w_bits"], pattern["a_bits"] = pattern.pop(JOINT_BITS)
    return all(key in resolved and resolved[key] == value for key, value in pattern.items())


def _resolve(sweep: Sweep, point: dict[str, Any]) -> dict[str, Any]:
    """base ∪ point → RunConfig kwargs.  A point's token budget replaces the base's other kind."""
    merged = dict(sweep.base)
    if "tokens" in point:
        merged.pop("tokens_per_param", None)
    if "tokens_per_param" in point:
        merged.pop("tokens", None)
    if JOINT_BITS in point or "w_bits" in point or "a_bits" in point:
        merged.pop(JOINT_BITS, None)
    merged.update(point)
    if JOINT_BITS in merged:
        merged["w_bits"], merged["a_bits"] = merged.pop(JOINT_BITS)
    return merged


def _describe(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items()) or "(base only)"


def grid_points(sweep: Sweep) -> int:
    """How many points the grid product plus include entries has (before exclude / de-duplication)."""
    return (math.prod(len(v) for v in sweep.axes.values()) if sweep.axes else 0) + len(sweep.include)


def check_grid_size(sweep: Sweep, max_points: int = DEFAULT_MAX_GRID) -> int:
    """Refuse a grid larger than `max_points` before expanding it (a 10⁶-point grid would hang)."""
    n = grid_points(sweep)
    if n > max_points:
        dims = " × ".join(f"{len(v)} {k}" for k, v in sweep.axes.items())
        raise SpecError(sweep.path, "grid", f"{n:,} points ({dims}{' + include' if sweep.include else ''}) "
                                            f"exceed the limit of {max_points:,}; raise it with --max-grid {n}")
    return n


def expand(sweep: Sweep, max_points: int = DEFAULT_MAX_GRID) -> list[RunConfig]:
    """Every RunConfig of the sweep: grid product minus exclude, plus include; de-duplicated,
    in file order.  Raises SpecError naming the first point RunConfig rejects, or when the grid has
    more than `max_points` points."""
    check_grid_size(sweep, max_points)
    names = list(sweep.axes)
    points: list[tuple[str, dict[str, Any]]] = []
    for combo in itertools.product(*(sweep.axes[n] for n in names)):
        point = dict(zip(names, combo))
        if any(_matches(_resolve(sweep, point), ex) for ex in sweep.exclude):
            continue
        points.append(("grid point", point))
    if not sweep.axes and not sweep.include:
        points.append(("base", {}))
    points += [(f"include[{i}]", p) for i, p in enumerate(sweep.include)]

    configs: list[RunConfig] = []
    seen: set[RunConfig] = set()
    for where, point in points:
        try:
            cfg = RunConfig.from_dict(_resolve(sweep, point))
        except (ValueError, TypeError) as exc:
            raise SpecError(sweep.path, where, f"{_describe(point)}: {exc}") from None
        key = _freeze(cfg)
        if key not in seen:
            seen.add(key)
            configs.append(cfg)
    if not configs:
        raise SpecError(sweep.path, "exclude", "every grid point is excluded; nothing to run")
    return configs


def _freeze(cfg: RunConfig) -> Any:
    """Hashable identity of a config (quantizer_options is a dict)."""
    return tuple(sorted((k, repr(v)) for k, v in cfg.to_dict().items()))


def default_data_identity() -> DataIdentityFn:
    from quest_lab.corpus import data_identity

    return data_identity


class ContractError(ValueError):
    """A trial whose run_id, config and data identity disagree (the plan → worker contract)."""


@dataclass(frozen=True)
class PlannedRun:
    """The plan → worker contract: what the driver hands a worker.  The run_id is the hash of the
    config and the data identity (`RunConfig.run_id`); the worker checks it before training and checks
    that the data it trained on has that identity; the store refuses a result that disagrees."""

    run_id: str
    config: RunConfig
    data_identity: str

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "config": self.config.to_dict(), "data_identity": self.data_identity}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PlannedRun":
        run = cls(run_id=d["run_id"], config=RunConfig.from_dict(d["config"]), data_identity=d["data_identity"])
        run.verify()
        return run

    def verify(self) -> None:
        expected = self.config.run_id(self.data_identity)
        if expected != self.run_id:
            raise ContractError(f"run {self.run_id}: its config and data identity hash to {expected}; "
                                "the plan was changed on its way to the worker")

    def check_result(self, result: RunResult) -> RunResult:
        """The result, with the planned identity; ContractError when the worker trained on other data."""
        if result.data_identity and result.data_identity != self.data_identity:
            raise ContractError(f"run {self.run_id}: the worker trained on data {result.data_identity} but "
                                f"the run was planned on {self.data_identity} (the corpus or tokenizer differs "
                                "on this worker); nothing stored")
        return dataclasses.replace(result, data_identity=self.data_identity)

    @property
    def cost(self) -> float:
        """Relative compute estimate (N·D) used to launch long runs first."""
        return float(self.config.n_params) * float(self.config.token_budget)


@dataclass
class Plan:
    sweep: Sweep
    runs: list[PlannedRun]  # the whole grid, in file order
    existing: dict[str, str] = field(default_factory=dict)  # run_id -> status in the store
    rerun_failed: bool = False

    @property
    def total(self) -> int:
        return len(self.runs)

    @property
    def done(self) -> list[PlannedRun]:
        return [r for r in self.runs if self.existing.get(r.run_id) in DONE_STATUSES]

    @property
    def failed(self) -> list[PlannedRun]:
        return [r for r in self.runs if self.existing.get(r.run_id) == "failed"]

    @property
    def to_run(self) -> list[PlannedRun]:
        """Missing, pending, or left `running` by a killed driver (+ failed with rerun_failed);
        longest first so the last trials to finish are short ones."""
        skip = DONE_STATUSES if self.rerun_failed else DONE_STATUSES + ("failed",)
        todo = [r for r in self.runs if self.existing.get(r.run_id) not in skip]
        return sorted(todo, key=lambda r: -r.cost)

    def summary(self) -> str:
        failed = len(self.failed)
        skipped = "" if self.rerun_failed or not failed else f" ({failed} failed skipped; --rerun-failed retries them)"
        return (f"sweep {self.sweep.name}: {self.total} total, {len(self.done)} done, "
                f"{len(self.to_run)} to run{skipped}")


def plan_sweep(sweep: Sweep, existing: Callable[[list[str]], dict[str, str]],
               *, rerun_failed: bool = False, data_identity: DataIdentityFn | None = None,
               max_points: int = DEFAULT_MAX_GRID) -> Plan:
    """Resolve the grid, compute run_ids and look their status up with `existing(run_ids)`."""
    ident = data_identity or default_data_identity()
    cache: dict[tuple[str, str, int], str] = {}
    runs: list[PlannedRun] = []
    for cfg in expand(sweep, max_points):
        key = (cfg.corpus, cfg.tokenizer, cfg.vocab_size)
        if key not in cache:
            cache[key] = ident(*key)
        runs.append(PlannedRun(cfg.run_id(cache[key]), cfg, cache[key]))
    return Plan(sweep=sweep, runs=runs, existing=existing([r.run_id for r in runs]),
                rerun_failed=rerun_failed)
