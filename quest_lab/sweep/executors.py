"""Executors: run planned trials somewhere and report back to the driver through `TrialEvents`.

An executor never touches the store: before a run's first attempt it asks `events.claim(run_id)` (the
driver claims the run in the store; False means another driver has it: skip it), then reports
`events.started / retrying / finished / failed` in the driver process, and the driver's listener
(`quest_lab.sweep.runner.StoreWriter`) writes.  Workers run `run_trial(planned, train_fn)`: the plan →
worker contract (run_id, config and data identity must agree; see `PlannedRun`).

Executors are a registry like laws and quantizers: a module `quest_lab/sweep/<name>_executor.py`
defining a class decorated with `@register_executor("<name>")` is found by `load_executors()`; its
class attributes say what `--executor auto` may use it for (`parallel`, `remote`).
"""
from __future__ import annotations

import importlib
import logging
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from quest_lab.registry import class_registrar, import_plugins
from quest_lab.run import RunConfig, RunResult
from quest_lab.safe_text import clip_error
from quest_lab.sweep.grid import ContractError, PlannedRun

log = logging.getLogger(__name__)

TrainFn = Callable[[RunConfig], RunResult]


def default_train_fn() -> TrainFn:
    from quest_lab.train import train

    return train


def import_train_fn(spec: str) -> TrainFn:
    """'package.module:function' -> the function (for --train-fn and custom trainers)."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"train function {spec!r} must look like 'package.module:function'")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import train function {spec!r}: {exc}") from None
    if not callable(fn):
        raise ValueError(f"train function {spec!r} is not callable")
    return fn


def format_error(exc: BaseException) -> str:
    """'Type: message' (first line of the message) on the first line, then the traceback; bounded
    without ever losing the first line."""
    msg = str(exc).strip()
    head = f"{type(exc).__name__}: {msg.splitlines()[0]}" if msg else type(exc).__name__
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return clip_error(f"{head}\n{tb}")


def run_trial(run: PlannedRun, train_fn: TrainFn) -> RunResult:
    """Worker side of the plan → worker contract: check that the run_id is the hash of the config and
    data identity it came with, train, and check that the data the worker trained on is that data."""
    run.verify()
    return run.check_result(train_fn(run.config))


class TrialEvents(Protocol):
    """Driver-side listener.  All calls happen in the driver process, one at a time."""

    def claim(self, run_id: str) -> bool: ...

    def started(self, run_id: str, attempt: int) -> None: ...

    def retrying(self, run_id: str, error: str, attempt: int) -> None: ...

    def finished(self, run_id: str, result: RunResult, attempts: int) -> None: ...

    def failed(self, run_id: str, error: str, attempts: int) -> None: ...


@dataclass(frozen=True)
class ExecutorConfig:
    retries: int = 0  # extra attempts after a trial raises
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None  # None: as many as the resources allow
    address: str | None = None  # cluster address (remote executors); None starts a local one
    storage_path: str | None = None  # executor's scratch dir (Ray Tune experiments); default in the cache
    name: str = "sweep"

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries={self.retries!r} must be >= 0")
        if not self.cpus_per_trial > 0 or not self.gpus_per_trial >= 0:
            raise ValueError(f"resources cpus={self.cpus_per_trial!r} must be > 0 and "
                             f"gpus={self.gpus_per_trial!r} >= 0")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent={self.max_concurrent!r} must be >= 1")


class Executor(ABC):
    name: ClassVar[str]
    parallel: ClassVar[bool] = False  # runs several trials at once (`auto` picks it when that helps)
    remote: ClassVar[bool] = False  # can run on a cluster given by --address
    priority: ClassVar[int] = 100  # among executors `auto` could pick, the lowest wins

    def __init__(self, config: ExecutorConfig, train_fn: TrainFn | None = None) -> None:
        self.config = config
        self.train_fn = train_fn or default_train_fn()

    @abstractmethod
    def run(self, runs: Sequence[PlannedRun], events: TrialEvents) -> None:
        """Run every trial this driver can claim (in order where possible); report each through `events`."""


EXECUTORS: dict[str, type[Executor]] = {}


register_executor = class_registrar(EXECUTORS, "executor")  # @register_executor("ray") class RayExecutor(Executor): ...


def load_executors() -> dict[str, type[Executor]]:
    """Import every `*_executor` module of this package (each registers its executor); the registry."""
    import_plugins(__name__.rsplit(".", 1)[0], lambda m: m.endswith("_executor"))
    return EXECUTORS


def get_executor(name: str) -> type[Executor]:
    executors = load_executors()
    if name not in executors:
        raise ValueError(f"executor {name!r} is unknown; allowed: auto, {', '.join(executors)}")
    return executors[name]


def make_executor(name: str, config: ExecutorConfig, train_fn: TrainFn | None = None) -> Executor:
    return get_executor(name)(config, train_fn)


def not_retried(exc: BaseException) -> bool:
    """Errors a retry cannot fix: the plan → worker contract was broken."""
    return isinstance(exc, ContractError)
