"""The sweep driver: plan → register in the store → executor → single-writer store updates."""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field

from quest_lab.run import RunResult
from quest_lab.store import Store
from quest_lab.sweep.executors import ExecutorConfig, TrainFn, make_executor
from quest_lab.sweep.grid import DataIdentityFn, Plan, plan_sweep
from quest_lab.sweep.progress import SweepProgress
from quest_lab.sweep.spec import Sweep

log = logging.getLogger(__name__)


class SweepSetupError(ValueError):
    """The sweep cannot run here (e.g. GPUs requested on a machine without any)."""


class StoreWriter:
    """`TrialEvents` listener: the only code that writes run rows during a sweep (driver side)."""

    def __init__(self, store: Store, progress: SweepProgress | None = None) -> None:
        self.store = store
        self.progress = progress
        self.counts: dict[str, int] = {"completed": 0, "diverged": 0, "failed": 0}
        self.trial_s: dict[str, float] = {}
        self.first_start: float | None = None  # perf_counter() of the first trial start
        self._t0: dict[str, float] = {}

    def started(self, run_id: str, attempt: int) -> None:
        self._t0[run_id] = time.perf_counter()
        if self.first_start is None:
            self.first_start = self._t0[run_id]
        self.store.mark_running(run_id, attempt)
        if self.progress:
            self.progress.started()

    def retrying(self, run_id: str, error: str, attempt: int) -> None:
        log.warning("run %s failed (attempt %d), retrying: %s", run_id, attempt, error.splitlines()[0])
        if self.progress:
            self.progress.retrying()

    def _elapsed(self, run_id: str) -> None:
        if run_id in self._t0:
            self.trial_s[run_id] = self.trial_s.get(run_id, 0.0) + time.perf_counter() - self._t0.pop(run_id)

    def in_flight(self) -> list[str]:
        """Runs started but not yet written as finished/failed."""
        return list(self._t0)

    def finished(self, run_id: str, result: RunResult, attempts: int) -> None:
        status = self.store.record_result(run_id, result, attempts)
        self._elapsed(run_id)  # after the write: an interrupted write leaves the run in flight
        self.counts[status] = self.counts.get(status, 0) + 1
        if self.progress:
            self.progress.finished(status)

    def failed(self, run_id: str, error: str, attempts: int) -> None:
        self.store.record_failure(run_id, error, attempts)
        self._elapsed(run_id)
        self.counts["failed"] += 1
        log.warning("run %s failed after %d attempt(s): %s", run_id, attempts, error.splitlines()[0])
        if self.progress:
            self.progress.failed_run()


@dataclass
class SweepOutcome:
    plan: Plan
    executor: str
    counts: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0  # executor wall time, Ray start-up included
    startup_s: float = 0.0  # ray.init (0 for local / an already-running Ray)
    first_trial_s: float = 0.0  # from the executor's start to the first trial start (ray.init included)
    trial_s: dict[str, float] = field(default_factory=dict)  # driver-observed time per run
    unfinished: int = 0  # runs of the plan with no result: the sweep was interrupted (Ctrl-C)

    @property
    def interrupted(self) -> bool:
        return self.unfinished > 0

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and not self.interrupted


def concurrency(sweep: Sweep) -> int:
    """How many trials this machine can run at once under the sweep's resources."""
    res = sweep.spec.resources
    limit = math.floor((os.cpu_count() or 1) / res.cpus)
    if res.gpus > 0:
        limit = min(limit, math.floor(_local_gpus() / res.gpus))
    if sweep.spec.max_concurrent is not None:
        limit = min(limit, sweep.spec.max_concurrent)
    return max(limit, 0)


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch / broken driver: no GPUs
        return 0


def choose_executor(requested: str, sweep: Sweep, n_to_run: int, address: str | None) -> str:
    """`auto`: ray when a cluster address is given or more than one trial can run at once."""
    if requested != "auto":
        return requested
    if address:
        return "ray"
    return "ray" if concurrency(sweep) > 1 and n_to_run > 1 else "local"


def check_runnable(sweep: Sweep, executor: str, address: str | None) -> None:
    """Fail early (before writing) when the local machine cannot run a single trial."""
    if address:
        return
    res = sweep.spec.resources
    if res.gpus > 0 and _local_gpus() < res.gpus:
        raise SweepSetupError(f"sweep {sweep.name!r} asks for {res.gpus:g} GPU(s) per trial but this "
                              f"machine has {_local_gpus()}; run it on a GPU machine or pass --address")
    if executor == "ray" and res.cpus > (os.cpu_count() or 1):
        raise SweepSetupError(f"sweep {sweep.name!r} asks for {res.cpus:g} CPUs per trial but this "
                              f"machine has {os.cpu_count()}")


def plan(sweep: Sweep, store: Store, *, rerun_failed: bool = False,
         data_identity: DataIdentityFn | None = None) -> Plan:
    return plan_sweep(sweep, store.statuses, rerun_failed=rerun_failed, data_identity=data_identity)


def run_sweep(the_plan: Plan, store: Store, *, executor: str = "auto", address: str | None = None,
              train_fn: TrainFn | None = None, show_progress: bool = True,
              storage_path: str | None = None) -> SweepOutcome:
    """Register the grid (new runs → pending), run what is left, write each result as it arrives."""
    sweep = the_plan.sweep
    todo = the_plan.to_run
    name = choose_executor(executor, sweep, len(todo), address)
    check_runnable(sweep, name, address)
    store.register_sweep(sweep.name, sweep.spec.model_dump(mode="json"), sweep.path,
                         [(r.run_id, r.config, r.data_identity) for r in the_plan.runs])
    outcome = SweepOutcome(plan=the_plan, executor=name)
    if not todo:
        return outcome
    res = sweep.spec.resources
    ex = make_executor(name, ExecutorConfig(
        retries=sweep.spec.retries, cpus_per_trial=res.cpus, gpus_per_trial=res.gpus,
        max_concurrent=sweep.spec.max_concurrent, address=address, storage_path=storage_path,
        name=sweep.name), train_fn)
    t0 = time.perf_counter()
    with SweepProgress(len(todo), sweep.name, enabled=show_progress) as progress:
        writer = StoreWriter(store, progress)
        try:
            ex.run(todo, writer)  # Ray Tune returns early on Ctrl-C; the local executor raises
        except KeyboardInterrupt:
            log.debug("sweep %s interrupted", sweep.name)
        finally:
            # Runs this driver left `running` go back to `pending`: the store says what is true.
            store.release(writer.in_flight())
    outcome.wall_s = time.perf_counter() - t0
    outcome.startup_s = getattr(ex, "startup_s", 0.0)
    outcome.first_trial_s = (writer.first_start or t0) - t0
    outcome.counts = writer.counts
    outcome.trial_s = writer.trial_s
    outcome.unfinished = len(todo) - sum(writer.counts.values())
    return outcome
