"""The sweep driver: plan → register in the store → claim → executor → store updates by the claim holder.

Several drivers may run the same sweep on one store (`quest_lab.sweep.claims`): each run is claimed
before it trains, so it is trained once; a driver started later trains only what nobody holds.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field

from quest_lab.run import RunResult
from quest_lab.safe_text import display_url
from quest_lab.store import ClaimLost, IdentityMismatch, Store
from quest_lab.sweep.claims import DEFAULT_TTL_S, Claims
from quest_lab.sweep.executors import ExecutorConfig, TrainFn, get_executor, load_executors, make_executor
from quest_lab.sweep.grid import DEFAULT_MAX_GRID, DataIdentityFn, Plan, plan_sweep
from quest_lab.sweep.progress import SweepProgress
from quest_lab.sweep.spec import Sweep

log = logging.getLogger(__name__)


class SweepSetupError(ValueError):
    """The sweep cannot run here (e.g. GPUs requested on a machine without any)."""


class StoreWriter:
    """`TrialEvents` listener: the code that writes run rows during a sweep (driver side), through this
    driver's claims."""

    def __init__(self, store: Store, claims: Claims, progress: SweepProgress | None = None) -> None:
        self.store = store
        self.claims = claims
        self.progress = progress
        self.counts: dict[str, int] = {"completed": 0, "diverged": 0, "failed": 0}
        self.skipped = 0  # runs another driver held, or finished meanwhile
        self.lost = 0  # results not stored: this driver's claim had expired and was retaken
        self.trial_s: dict[str, float] = {}
        self.first_start: float | None = None  # perf_counter() of the first trial start
        self._t0: dict[str, float] = {}

    def claim(self, run_id: str) -> bool:
        ok = self.claims.claim(run_id)
        if not ok:
            self.skipped += 1
            if self.progress:
                self.progress.skipped()
        return ok

    def started(self, run_id: str, attempt: int) -> None:
        self._t0[run_id] = time.perf_counter()
        if self.first_start is None:
            self.first_start = self._t0[run_id]
        if not self.store.mark_running(run_id, attempt, owner=self.claims.owner):
            log.warning("run %s: this driver's claim was taken over by another driver", run_id)
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
        try:
            status = self.store.record_result(run_id, result, attempts, owner=self.claims.owner)
        except IdentityMismatch as exc:  # the store refuses a result that contradicts its run_id
            self.failed(run_id, f"IdentityMismatch: {exc}", attempts)
            return
        except ClaimLost as exc:
            self._lost(run_id, exc)
            return
        self._done(run_id, status)

    def failed(self, run_id: str, error: str, attempts: int) -> None:
        try:
            self.store.record_failure(run_id, error, attempts, owner=self.claims.owner)
        except ClaimLost as exc:
            self._lost(run_id, exc)
            return
        log.warning("run %s failed after %d attempt(s): %s", run_id, attempts, error.splitlines()[0])
        self._done(run_id, "failed")

    def _done(self, run_id: str, status: str) -> None:
        self._elapsed(run_id)  # after the write: an interrupted write leaves the run in flight
        self.claims.done(run_id)
        self.counts[status] = self.counts.get(status, 0) + 1
        if self.progress:
            self.progress.finished(status)

    def _lost(self, run_id: str, exc: Exception) -> None:
        log.warning("%s", exc)
        self._elapsed(run_id)
        self.claims.done(run_id)
        self.lost += 1
        if self.progress:
            self.progress.running = max(0, self.progress.running - 1)
            self.progress.skipped()


@dataclass
class SweepOutcome:
    plan: Plan
    executor: str
    counts: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0  # executor wall time, Ray start-up included
    startup_s: float = 0.0  # ray.init (0 for local / an already-running Ray)
    first_trial_s: float = 0.0  # from the executor's start to the first trial start (ray.init included)
    trial_s: dict[str, float] = field(default_factory=dict)  # driver-observed time per run
    unfinished: int = 0  # runs of the plan left without a result: interrupted (Ctrl-C)
    skipped: int = 0  # runs another driver held (or finished) when this one tried to claim them
    lost: int = 0  # results dropped because this driver's claim had been taken over

    @property
    def interrupted(self) -> bool:
        return self.unfinished > 0

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and not self.interrupted


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch / broken driver: no GPUs
        return 0


def concurrency(sweep: Sweep) -> int:
    """How many trials this machine can run at once under the sweep's resources."""
    res = sweep.spec.resources
    limit = math.floor((os.cpu_count() or 1) / res.cpus)
    if res.gpus > 0:
        limit = min(limit, math.floor(_local_gpus() / res.gpus))
    if sweep.spec.max_concurrent is not None:
        limit = min(limit, sweep.spec.max_concurrent)
    return max(limit, 0)


def choose_executor(requested: str, sweep: Sweep, n_to_run: int, address: str | None) -> str:
    """An executor by name, or `auto`: a remote-capable one when a cluster address is given, a parallel
    one when more than one trial can run at once here, else a sequential one (registry attributes)."""
    if requested != "auto":
        cls = get_executor(requested)
        if address and not cls.remote:
            remote = [n for n, c in load_executors().items() if c.remote]
            raise SweepSetupError(f"--address needs an executor that runs on a cluster ({', '.join(remote)}), "
                                  f"not {requested}")
        return requested
    if address:
        want = lambda c: c.remote  # noqa: E731
    else:
        parallel = concurrency(sweep) > 1 and n_to_run > 1
        want = lambda c: c.parallel == parallel  # noqa: E731
    candidates = sorted((c.priority, n) for n, c in load_executors().items() if want(c))
    if not candidates:
        raise SweepSetupError("no registered executor fits (auto); pass --executor NAME")
    return candidates[0][1]


def check_runnable(sweep: Sweep, executor: str, address: str | None) -> None:
    """Fail early (before writing) when the local machine cannot run a single trial."""
    if address:
        return
    res = sweep.spec.resources
    if res.gpus > 0 and _local_gpus() < res.gpus:
        raise SweepSetupError(f"sweep {sweep.name!r} asks for {res.gpus:g} GPU(s) per trial but this "
                              f"machine has {_local_gpus()}; run it on a GPU machine or pass --address")
    if get_executor(executor).parallel and res.cpus > (os.cpu_count() or 1):
        raise SweepSetupError(f"sweep {sweep.name!r} asks for {res.cpus:g} CPUs per trial but this "
                              f"machine has {os.cpu_count()}")


def plan(sweep: Sweep, store: Store, *, rerun_failed: bool = False,
         data_identity: DataIdentityFn | None = None, max_points: int = DEFAULT_MAX_GRID) -> Plan:
    return plan_sweep(sweep, store.statuses, rerun_failed=rerun_failed, data_identity=data_identity,
                      max_points=max_points)


def run_sweep(the_plan: Plan, store: Store, *, executor: str = "auto", address: str | None = None,
              train_fn: TrainFn | None = None, show_progress: bool = True,
              storage_path: str | None = None, claim_ttl_s: float = DEFAULT_TTL_S) -> SweepOutcome:
    """Register the grid (new runs → pending), claim and run what is left, write each result as it arrives."""
    sweep = the_plan.sweep
    todo = the_plan.to_run
    name = choose_executor(executor, sweep, len(todo), address)
    check_runnable(sweep, name, address)
    claims = Claims(store, ttl_s=claim_ttl_s, retake_failed=the_plan.rerun_failed)
    spec = sweep.spec.model_dump(mode="json")
    spec["store"] = display_url(spec.get("store", ""))  # a stored sweep never holds a password
    store.register_sweep(sweep.name, spec, sweep.path, [(r.run_id, r.config, r.data_identity) for r in the_plan.runs])
    outcome = SweepOutcome(plan=the_plan, executor=name)
    if not todo:
        return outcome
    res = sweep.spec.resources
    ex = make_executor(name, ExecutorConfig(
        retries=sweep.spec.retries, cpus_per_trial=res.cpus, gpus_per_trial=res.gpus,
        max_concurrent=sweep.spec.max_concurrent, address=address, storage_path=storage_path,
        name=sweep.name), train_fn)
    t0 = time.perf_counter()
    with SweepProgress(len(todo), sweep.name, enabled=show_progress) as progress, claims:
        writer = StoreWriter(store, claims, progress)
        try:
            ex.run(todo, writer)  # Ray Tune returns early on Ctrl-C; the local executor raises
        except KeyboardInterrupt:
            log.debug("sweep %s interrupted", sweep.name)
    outcome.wall_s = time.perf_counter() - t0
    outcome.startup_s = getattr(ex, "startup_s", 0.0)
    outcome.first_trial_s = (writer.first_start or t0) - t0
    outcome.counts = writer.counts
    outcome.trial_s = writer.trial_s
    outcome.skipped, outcome.lost = writer.skipped, writer.lost
    # runs with no result and no other driver: Ctrl-C, or an executor that stopped early (claims
    # this driver still held went back to pending when `claims` exited)
    outcome.unfinished = len(todo) - sum(writer.counts.values()) - writer.skipped - writer.lost
    return outcome
