"""How `quest-lab train` stores its run: as a one-run sweep (`train` by default), through the same plan →
worker contract and claims as a sweep driver, so `runs`, `fit`, `report` and `export` see it like any other.

Before training: the run is planned (run_id = hash of the config and the data identity), registered under
the sweep and claimed.  After: the result is checked against the planned data identity and recorded by
the claim holder.  A run already stored (completed or diverged) is trained again but not stored again;
an error while training is stored as a failed run; Ctrl-C puts the run back to pending.
"""
from __future__ import annotations

from dataclasses import dataclass

from quest_lab.commands import DEFAULT_STORE, bad_input, fail, say, warn
from quest_lab.run import RunConfig, RunResult

TRAIN_SWEEP = "train"
SPEC = {"name": TRAIN_SWEEP, "source": "quest-lab train", "note": "single runs started with `quest-lab train`"}


@dataclass
class RunRecorder:
    store: object  # quest_lab.store.Store
    planned: object  # quest_lab.sweep.grid.PlannedRun
    sweep: str
    claims: object | None = None  # quest_lab.sweep.claims.Claims while held
    held: bool = False

    @classmethod
    def open(cls, url: str | None, cfg: RunConfig, sweep: str) -> "RunRecorder":
        """Plan and register the run; a store that cannot be written is exit 2, before any training."""
        from quest_lab.corpus import data_identity
        from quest_lab.store import Store
        from quest_lab.sweep.grid import PlannedRun

        try:
            ident = data_identity(cfg.corpus, cfg.tokenizer, cfg.vocab_size)
        except (OSError, ValueError) as exc:
            fail(f"cannot read corpus {cfg.corpus!r} for its identity: {exc}")
        planned = PlannedRun(cfg.run_id(ident), cfg, ident)
        with bad_input():
            store = Store(url or DEFAULT_STORE)
            store.register_sweep(sweep, dict(SPEC, name=sweep), None, [(planned.run_id, cfg, ident)])
        return cls(store=store, planned=planned, sweep=sweep)

    def __enter__(self) -> "RunRecorder":
        from quest_lab.sweep.claims import Claims

        self.claims = Claims(self.store).__enter__()
        with bad_input():
            self.held = self.claims.claim(self.planned.run_id)
        if not self.held:
            status = self.store.statuses([self.planned.run_id]).get(self.planned.run_id, "unknown")
            say(f"run {self.planned.run_id} is already in {self.store.display_url} ({status}); training it again "
                "without storing the result")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.held and exc is not None and not isinstance(exc, KeyboardInterrupt):
                from quest_lab.sweep.executors import format_error

                self.store.record_failure(self.planned.run_id, format_error(exc), 1, owner=self.claims.owner)
                self.claims.done(self.planned.run_id)
                warn(f"run {self.planned.run_id} stored as failed in {self.store.display_url}")
        finally:
            self.claims.__exit__(exc_type, exc, tb)  # releases a run still held (Ctrl-C): pending again

    def record(self, result: RunResult) -> str | None:
        """Store the result if this command holds the run; what the summary says about it."""
        if not self.held:
            return f"no: run {self.planned.run_id} was already stored"
        from quest_lab.store import StoreError

        try:
            result = self.planned.check_result(result)
            status = self.store.record_result(self.planned.run_id, result, 1, owner=self.claims.owner)
        except (StoreError, ValueError) as exc:
            warn(f"run not stored in {self.store.display_url}: {str(exc).splitlines()[0]}")
            return "no (see the warning)"
        self.claims.done(self.planned.run_id)
        return f"run {self.planned.run_id} ({status}) in sweep {self.sweep} of {self.store.display_url}"
