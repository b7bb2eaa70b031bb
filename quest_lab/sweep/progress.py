"""One rich progress bar for a sweep: done / running / failed / diverged counts and an ETA."""
from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)


class SweepProgress:
    """Counts trial events; renders a live bar when `enabled` (a terminal), else stays silent."""

    def __init__(self, total: int, name: str, *, console: Console | None = None, enabled: bool = True) -> None:
        self.total = total
        self.running = self.done = self.failed = self.diverged = self.retries = self.skips = 0
        self._progress: Progress | None = None
        if enabled and total:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("running {task.fields[running]}  failed {task.fields[failed]}  "
                           "diverged {task.fields[diverged]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._progress.add_task(name, total=total, running=0, failed=0, diverged=0)

    def __enter__(self) -> "SweepProgress":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()

    def _refresh(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done + self.failed + self.skips, running=self.running,
                                  failed=self.failed, diverged=self.diverged)

    def started(self) -> None:
        self.running += 1
        self._refresh()

    def retrying(self) -> None:
        self.retries += 1
        self.running = max(0, self.running - 1)
        self._refresh()

    def finished(self, status: str) -> None:
        self.running = max(0, self.running - 1)
        if status == "failed":
            self.failed += 1
        else:
            self.done += 1
            self.diverged += status == "diverged"
        self._refresh()

    def failed_run(self) -> None:
        self.finished("failed")

    def skipped(self) -> None:
        """A run another driver holds (or finished): nothing to do here."""
        self.skips += 1
        self._refresh()
