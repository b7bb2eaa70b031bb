"""Executors: run planned trials somewhere and report back to the driver through `TrialEvents`.

An executor never touches the store: it calls `events.started / retrying / finished / failed`
in the driver process, and the driver's listener (`quest_lab.sweep.runner.StoreWriter`) writes.
Executors are registered by name with `@register_executor("name")`.
"""
from __future__ import annotations

import logging
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from quest_lab.run import RunConfig, RunResult
from quest_lab.sweep.grid import PlannedRun

log = logging.getLogger(__name__)

TrainFn = Callable[[RunConfig], RunResult]


def default_train_fn() -> TrainFn:
    from quest_lab.train import train

    return train


def import_train_fn(spec: str) -> TrainFn:
    """'package.module:function' -> the function (for --train-fn and custom trainers)."""
    import importlib

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
    """'Type: message' on the first line, then the traceback (bounded)."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}\n{tb}"[-8000:]


class TrialEvents(Protocol):
    """Driver-side listener.  All calls happen in the driver process, one at a time."""

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
    address: str | None = None  # Ray cluster address; None starts a local one
    storage_path: str | None = None  # Ray Tune experiment dir; default ~/.cache/quest-lab/ray
    name: str = "sweep"

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries={self.retries!r} must be >= 0")
        if not self.cpus_per_trial > 0 or self.gpus_per_trial < 0:
            raise ValueError(f"resources cpus={self.cpus_per_trial!r} must be > 0 and "
                             f"gpus={self.gpus_per_trial!r} >= 0")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent={self.max_concurrent!r} must be >= 1")


class Executor(ABC):
    name: ClassVar[str]

    def __init__(self, config: ExecutorConfig, train_fn: TrainFn | None = None) -> None:
        self.config = config
        self.train_fn = train_fn or default_train_fn()

    @abstractmethod
    def run(self, runs: Sequence[PlannedRun], events: TrialEvents) -> None:
        """Run every trial (in order where possible); report each through `events`."""


EXECUTORS: dict[str, type[Executor]] = {}


def register_executor(name: str) -> Callable[[type[Executor]], type[Executor]]:
    def deco(cls: type[Executor]) -> type[Executor]:
        if name in EXECUTORS:
            raise ValueError(f"executor {name!r} is already registered")
        cls.name = name
        EXECUTORS[name] = cls
        return cls

    return deco


def make_executor(name: str, config: ExecutorConfig, train_fn: TrainFn | None = None) -> Executor:
    try:
        cls = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"executor {name!r} is unknown; allowed: {', '.join(EXECUTORS)}") from None
    return cls(config, train_fn)


@register_executor("local")
class LocalExecutor(Executor):
    """Sequential, in-process: for debugging and tiny CPU runs."""

    def run(self, runs: Sequence[PlannedRun], events: TrialEvents) -> None:
        for run in runs:
            attempts = self.config.retries + 1
            for attempt in range(1, attempts + 1):
                events.started(run.run_id, attempt)
                try:
                    result = self.train_fn(run.config)
                except Exception as exc:  # a trial's real error: retry, then record failed
                    error = format_error(exc)
                    if attempt < attempts:
                        events.retrying(run.run_id, error, attempt)
                        continue
                    events.failed(run.run_id, error, attempt)
                    break
                events.finished(run.run_id, result, attempt)
                break
