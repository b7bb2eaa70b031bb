"""Experiment tracking from the sweep driver: every run the driver stores is also logged to a tracker
(MLflow: its config as params, final metrics, the train and eval loss curves as metric histories).

    tracking: {mlflow: sqlite:///mlflow.db}      # in a sweep file; or `quest-lab sweep FILE --mlflow URI`

Trackers are a registry (`@register_tracker("mlflow")`); a tracker gets each run after the store has it
(`TrackingEvents` wraps the driver's `StoreWriter`), so a tracker that fails can neither lose nor change
a result: its first error is one warning line and it is switched off for the rest of the sweep.  A
tracker that cannot start (MLflow not installed, a bad URI) stops the sweep before anything trains.
"""
from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from quest_lab.registry import class_registrar
from quest_lab.run import RunResult
from quest_lab.safe_text import display_url, password_of, scrub

log = logging.getLogger(__name__)
TRACKERS: dict[str, type["Tracker"]] = {}


class TrackingSetupError(ValueError):
    """A tracker cannot start; the message names it and what to do."""


register_tracker = class_registrar(TRACKERS, "tracker")  # @register_tracker("mlflow") class MlflowTracker(Tracker): ...


@dataclass(frozen=True)
class TrackedRun:
    """One run as the store recorded it."""

    run_id: str
    sweep: str
    status: str  # completed, diverged or failed (as stored)
    config: dict[str, Any]  # the RunConfig (to_dict), plus derived values
    result: RunResult | None  # None for a run that failed with an error
    error: str | None = None
    attempts: int = 1


class Tracker(ABC):
    name: ClassVar[str] = ""

    def __init__(self, uri: str, experiment: str) -> None:
        self.uri, self.experiment = uri, experiment

    @abstractmethod
    def log_run(self, run: TrackedRun) -> None: ...

    def close(self) -> None:
        """Flush and release (optional)."""


def make_trackers(tracking: dict[str, str], experiment: str) -> list[Tracker]:
    """One tracker per `tracking` entry; TrackingSetupError when one cannot start."""
    out = []
    for name, uri in tracking.items():
        if name not in TRACKERS:
            raise TrackingSetupError(f"tracker {name!r} is unknown; allowed: {', '.join(TRACKERS)}")
        out.append(TRACKERS[name](uri, experiment))
    return out


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)


def _first_line(exc: BaseException, uri: str) -> str:
    """An error's first line without the URI's password (also where the error quotes it bare)."""
    text = scrub(str(exc), password_of(uri)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@register_tracker("mlflow")
class MlflowTracker(Tracker):
    """MLflow: one MLflow run per stored run in the experiment named after the sweep.  Params: the run's
    config (nested options as `quantizer_options.<key>`); tags: run_id, sweep, status, precision, data
    identity; metrics: final losses, throughput, wall time, N, D, steps, and `train_loss` / `eval_loss` per
    step (x = optimizer step; `tokens` as the step's metric `tokens_seen`)."""

    def __init__(self, uri: str, experiment: str) -> None:
        super().__init__(uri, experiment)
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise TrackingSetupError("MLflow tracking needs the mlflow package: pip install 'quest-lab[mlflow]'") from None
        # MLflow's own INFO lines ("Creating initial MLflow database tables...") are not ours to print
        logging.getLogger("mlflow").setLevel(max(logging.getLogger("mlflow").level, logging.WARNING))
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        except Exception as exc:  # noqa: BLE001 - any MLflow or connection error: one line, nothing trained
            first = _first_line(exc, uri)
            raise TrackingSetupError(f"cannot use MLflow tracking URI {display_url(uri)}: {first}") from None

    def log_run(self, run: TrackedRun) -> None:
        from mlflow.entities import Metric, Param

        res = run.result
        cfg = run.config
        name = f"{cfg.get('size', '?')} {cfg.get('precision', '?')} D={cfg.get('token_budget', '?')} seed={cfg.get('seed')}"
        tags = {"quest_lab.run_id": run.run_id, "quest_lab.sweep": run.sweep, "quest_lab.status": run.status,
                "quest_lab.precision": str(cfg.get("precision")), "quest_lab.attempts": str(run.attempts)}
        if res is not None and res.data_identity:
            tags["quest_lab.data_identity"] = res.data_identity
        if run.error:
            tags["quest_lab.error"] = run.error.splitlines()[0][:5000]
        mlrun = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        rid = mlrun.info.run_id
        params: dict[str, str] = {}
        _flat("", cfg, params)
        now = int(time.time() * 1000)
        metrics = []
        if res is not None:
            finals = {"final_eval_loss": res.final_eval_loss, "final_train_loss": res.final_train_loss,
                      "tokens_per_s": res.tokens_per_s, "wall_time_s": res.wall_time_s, "n_params": res.n_params,
                      "tokens": res.tokens, "steps": res.steps}
            metrics += [Metric(k, float(v), now, 0) for k, v in finals.items() if _finite(v)]
            for key, curve in (("train_loss", res.train_curve), ("eval_loss", res.eval_curve)):
                for step, tokens, loss in curve:
                    if _finite(loss):
                        metrics.append(Metric(key, float(loss), now, int(step)))
                if key == "train_loss":
                    metrics += [Metric("tokens_seen", float(t), now, int(s)) for s, t, _ in curve]
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limits: 100 params, 1000 metrics per call
            self.client.log_batch(rid, params=items[i:i + 100])
        for j in range(0, len(metrics), 1000):
            self.client.log_batch(rid, metrics=metrics[j:j + 1000])
        self.client.set_terminated(rid, status="FINISHED" if run.status == "completed" else "FAILED")


class TrackingEvents:
    """A `TrialEvents` listener that passes every event to the driver's store writer and then logs each run
    it stored to the trackers.  Trackers see only what the store recorded (a result whose claim was lost
    is not logged); a tracker's first error is a one-line warning and turns it off."""

    def __init__(self, writer: Any, trackers: Sequence[Tracker], sweep: str, configs: dict[str, dict[str, Any]]) -> None:
        self.writer, self.trackers, self.sweep, self.configs = writer, list(trackers), sweep, configs
        self.errors: dict[str, str] = {}

    def claim(self, run_id: str) -> bool:
        return self.writer.claim(run_id)

    def started(self, run_id: str, attempt: int) -> None:
        self.writer.started(run_id, attempt)

    def retrying(self, run_id: str, error: str, attempt: int) -> None:
        self.writer.retrying(run_id, error, attempt)

    def finished(self, run_id: str, result: RunResult, attempts: int) -> None:
        status = self._stored(lambda: self.writer.finished(run_id, result, attempts))
        if status:
            self._track(TrackedRun(run_id, self.sweep, status, self.configs.get(run_id, {}), result,
                                   result.error, attempts))

    def failed(self, run_id: str, error: str, attempts: int) -> None:
        if self._stored(lambda: self.writer.failed(run_id, error, attempts)):
            self._track(TrackedRun(run_id, self.sweep, "failed", self.configs.get(run_id, {}), None, error, attempts))

    def _stored(self, write: Callable[[], None]) -> str | None:
        """Run the store write; the status it counted (None: nothing stored, e.g. a lost claim)."""
        before = dict(self.writer.counts)
        write()
        return next((s for s, n in self.writer.counts.items() if n > before.get(s, 0)), None)

    def _track(self, run: TrackedRun) -> None:
        for tracker in list(self.trackers):
            try:
                tracker.log_run(run)
            except Exception as exc:  # noqa: BLE001 - the result is already stored; tracking is best effort
                first = _first_line(exc, tracker.uri)
                self.errors[tracker.name] = first
                self.trackers.remove(tracker)
                log.warning("%s tracking to %s failed (%s: %s); results are stored, %s tracking is off for the "
                            "rest of this sweep", tracker.name, display_url(tracker.uri), type(exc).__name__,
                            first[:300], tracker.name)

    def close(self) -> None:
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("%s tracking: closing failed: %s", tracker.name, _first_line(exc, tracker.uri))
