"""The local executor: sequential, in-process (debugging, tiny CPU runs, machines without Ray)."""
from __future__ import annotations

from collections.abc import Sequence

from quest_lab.sweep.executors import Executor, TrialEvents, format_error, not_retried, register_executor, run_trial
from quest_lab.sweep.grid import PlannedRun


@register_executor("local")
class LocalExecutor(Executor):
    """One trial at a time in this process; claims each run just before training it."""

    parallel = False
    remote = False
    priority = 10

    def run(self, runs: Sequence[PlannedRun], events: TrialEvents) -> None:
        for run in runs:
            if not events.claim(run.run_id):
                continue  # done meanwhile, or another driver holds it
            attempts = self.config.retries + 1
            for attempt in range(1, attempts + 1):
                events.started(run.run_id, attempt)
                try:
                    result = run_trial(run, self.train_fn)
                except Exception as exc:  # a trial's real error: retry, then record failed
                    error = format_error(exc)
                    if attempt < attempts and not not_retried(exc):
                        events.retrying(run.run_id, error, attempt)
                        continue
                    events.failed(run.run_id, error, attempt)
                    break
                events.finished(run.run_id, result, attempt)
                break
