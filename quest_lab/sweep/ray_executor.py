"""The Ray Tune executor: one Tune trial per run, resources per trial, retries, bounded concurrency.

Trials are handed to Tune lazily by `_ClaimingSearcher` (a Tune searcher, so it runs in the driver):
each time Tune has room for a trial it asks for one, and the searcher claims the next run in the store
(`events.claim`) and hands out only what it claimed; with another driver on the same sweep, each run is
claimed, so trained, once.  Workers only run `run_trial(planned, train_fn)` and report the RunResult as
JSON; the `_EventsCallback` (a Tune callback, in the driver) turns trial starts / results / errors into
`TrialEvents` calls, and the driver's listener writes the store.  Ray's own console output is switched
off: the user sees the driver's progress bar only.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quest_lab.run import RunResult
from quest_lab.safe_text import clip_error
from quest_lab.sweep.executors import Executor, TrainFn, TrialEvents, register_executor, run_trial
from quest_lab.sweep.grid import PlannedRun
from quest_lab.sweep.spec import safe_name

log = logging.getLogger(__name__)

# Environment for a quiet local cluster (and for its workers).
QUIET_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
}
RESULT_KEY = "quest_lab_result"


def default_storage_path() -> str:
    root = Path(os.environ.get("QUEST_LAB_CACHE", Path.home() / ".cache" / "quest-lab")) / "ray"
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


def worker_env() -> dict[str, str]:
    """Workers import what the driver can import (train_fn may live in a test or user module) and
    keep the driver's working directory (relative corpus paths)."""
    paths = [p for p in sys.path if p and Path(p).exists()]
    extra = os.environ.get("PYTHONPATH", "")
    env = {"PYTHONPATH": os.pathsep.join(paths + ([extra] if extra else [])),
           "RAY_CHDIR_TO_TRIAL_DIR": "0"}
    env.update({k: os.environ.get(k, v) for k, v in QUIET_ENV.items()})
    return env


def quiet_ray_logging(level: int = logging.CRITICAL) -> None:
    """Trial errors are stored and summarised by the driver; Ray's own log lines are noise."""
    for name in ("ray", "ray.tune", "ray.train", "ray.air", "ray.data"):
        logging.getLogger(name).setLevel(level)


def _trial(config: dict[str, Any], *, train_fn: TrainFn, runs: dict[str, dict[str, Any]]) -> None:
    """Worker side: check the plan → worker contract, train one run, report its result (no store access)."""
    from ray import tune

    result = run_trial(PlannedRun.from_dict(runs[config["run_id"]]), train_fn)
    tune.report({RESULT_KEY: json.dumps(result.to_dict())})


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXC_LINE = re.compile(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b(:.*)?$")


def error_text(text: str, head: str | None = None) -> str:
    """Ray's error text -> 'Type: message' first (as the local executor stores it; by default the
    traceback's last exception line), then the traceback without terminal colours."""
    text = _ANSI.sub("", text).strip()
    if head is None:
        lines = [ln for ln in text.splitlines() if _EXC_LINE.match(ln)]
        head = lines[-1] if lines else ""
    return clip_error(f"{head}\n{text}" if head else text)


def _trial_error(trial: Any) -> str:
    try:
        exc = trial.get_pickled_error()
    except Exception:  # noqa: BLE001 - the error file may be unreadable; fall back to the text
        exc = None
    if exc is not None:
        cause = getattr(exc, "cause", None) or exc
        msg = str(cause).strip()
        head = f"{type(cause).__name__}: {msg.splitlines()[0]}" if msg else type(cause).__name__
        return error_text(str(exc), head=head)
    for getter in (lambda: Path(trial.error_file).read_text(), trial.get_error):
        try:
            text = getter()
        except Exception:  # noqa: BLE001 - not written / not synced yet
            continue
        if text:
            return error_text(str(text))
    return "trial failed (no error text from Ray)"


def _events_callback(events: TrialEvents):
    from ray.tune import Callback

    class _EventsCallback(Callback):
        """Runs in the driver: forwards trial lifecycle to the driver's listener."""

        def __init__(self, sink: TrialEvents) -> None:
            self.events: TrialEvents | None = sink
            self.reported: set[str] = set()
            self.attempt: dict[str, int] = {}

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its run config (experiment state); the driver-side listener (which
            # holds the store's engine) is not part of it.
            state = self.__dict__.copy()
            state["events"] = None
            return state

        @staticmethod
        def _rid(trial: Any) -> str:
            return trial.config["run_id"]

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            rid = self._rid(trial)
            self.attempt[rid] = self.attempt.get(rid, 0) + 1
            self.events.started(rid, self.attempt[rid])

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            rid = self._rid(trial)
            if RESULT_KEY in result and rid not in self.reported:
                self.reported.add(rid)
                run_result = RunResult.from_dict(json.loads(result[RESULT_KEY]))
                self.events.finished(rid, run_result, self.attempt.get(rid, 1))

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            rid = self._rid(trial)
            self.events.retrying(rid, _trial_error(trial), self.attempt.get(rid, 1))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            rid = self._rid(trial)
            if rid not in self.reported:
                self.reported.add(rid)
                self.events.failed(rid, _trial_error(trial), self.attempt.get(rid, 1))

    return _EventsCallback(events)


def _claiming_searcher(runs: Sequence[PlannedRun], events: TrialEvents):
    from ray.tune.search import Searcher

    class _ClaimingSearcher(Searcher):
        """Runs in the driver: hands Tune the next run this driver could claim, FINISHED when none is left."""

        def __init__(self, queue: Sequence[PlannedRun], sink: TrialEvents) -> None:
            super().__init__()
            self.queue = list(queue)
            self.events: TrialEvents | None = sink

        def __getstate__(self) -> dict[str, Any]:  # Tune pickles searchers; the listener stays here
            state = self.__dict__.copy()
            state["events"] = None
            return state

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            while self.queue:
                run = self.queue.pop(0)
                if self.events is not None and self.events.claim(run.run_id):
                    return {"run_id": run.run_id}
            return Searcher.FINISHED

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            pass

        def save(self, checkpoint_path: str) -> None:  # nothing to resume: the store is the state
            pass

        def restore(self, checkpoint_path: str) -> None:
            pass

    return _ClaimingSearcher(runs, events)


@register_executor("ray")
class RayExecutor(Executor):
    """Ray Tune `Tuner` fed by a claiming searcher; uses a running Ray session if there is one, else
    `ray.init(address=...)` (a local cluster when address is None) and shuts it down after."""

    parallel = True
    remote = True
    priority = 10
    startup_s: float = 0.0  # time spent in ray.init (0 when a session was already running)

    def run(self, runs: Sequence[PlannedRun], events: TrialEvents) -> None:
        if not runs:
            return
        import ray

        cfg = self.config
        started_here = False
        quiet_ray_logging(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL)
        if not ray.is_initialized():
            for k, v in QUIET_ENV.items():
                os.environ.setdefault(k, v)
            t0 = time.perf_counter()
            local = {"include_dashboard": False} if cfg.address is None else {}  # cluster: as started
            ray.init(address=cfg.address, log_to_driver=False, logging_level=logging.ERROR,
                     runtime_env={"env_vars": worker_env()}, **local)
            self.startup_s = time.perf_counter() - t0
            started_here = True
            log.info("ray.init took %.1f s", self.startup_s)
        try:
            self._fit(runs, events)
        finally:
            if started_here:
                ray.shutdown()

    def _limit(self) -> int:
        """Trials at once: max_concurrent, else what the cluster's CPUs/GPUs allow (at least 1).  It also
        bounds how many runs this driver holds claims on."""
        import ray

        cfg = self.config
        if cfg.max_concurrent is not None:
            return cfg.max_concurrent
        res = ray.cluster_resources()
        limit = math.floor(res.get("CPU", 1) / cfg.cpus_per_trial)
        if cfg.gpus_per_trial > 0:
            limit = min(limit, math.floor(res.get("GPU", 0) / cfg.gpus_per_trial))
        return max(limit, 1)

    def _fit(self, runs: Sequence[PlannedRun], events: TrialEvents) -> None:
        from ray import tune

        cfg = self.config
        planned = {r.run_id: r.to_dict() for r in runs}
        trainable = tune.with_parameters(_trial, train_fn=self.train_fn, runs=planned)
        resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            tune_config=tune.TuneConfig(search_alg=_claiming_searcher(runs, events), num_samples=len(runs),
                                       max_concurrent_trials=self._limit(),
                                       reuse_actors=True),  # no worker start-up per trial
            run_config=tune.RunConfig(
                name=f"{safe_name(cfg.name)}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=cfg.storage_path or default_storage_path(),
                failure_config=tune.FailureConfig(max_failures=cfg.retries),
                verbose=0,
                log_to_file=False,
                callbacks=[_events_callback(events)],
            ),
        )
        tuner.fit()
