"""The results store: SQLAlchemy 2 ORM over any URL (SQLite in WAL mode by default).

Tables (ORM rows in `quest_lab.store_tables`): `sweeps`, `runs` (one row per run_id, status pending/running/completed/diverged/failed),
`sweep_runs` (which sweeps contain which runs: a run shared by two grids is trained once),
`curves` (downsampled train/eval loss curves), `fits` (law fits) and `schema_version`.

Only the sweep driver writes (docs/design.md §1); every write is a single transaction, so a crash
never leaves a half-written run.  Reads never create the database: on a missing file they return
empty frames.
"""
from __future__ import annotations

import json
import logging
import math
import socket
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import create_engine, event, inspect, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from quest_lab.run import RunConfig, RunResult
from quest_lab.store_tables import SOURCE_OURS, Base, CurveRow, FitRow, RunRow, SchemaVersionRow, SweepRow, SweepRunRow

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///results.db"
# Bumped when the table layout changes (independent of run.SCHEMA_VERSION, which is run meaning).
STORE_SCHEMA_VERSION = 1

RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "sweep", "status", "size", "N", "D", "w_bits", "a_bits", "quantizer", "seed",
    "loss", "final_train_loss", "wall_time_s", "tokens_per_s", "device", "source",
    "precision", "tokens_per_param", "steps", "attempts", "error", "hardware", "host",
    "data_identity", "created_at", "started_at", "finished_at",
)
CURVE_COLUMNS: tuple[str, ...] = ("run_id", "step", "tokens", "loss", "kind")


class StoreError(RuntimeError):
    """The store URL or the database it points at cannot be used."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):  # numpy arrays
        return obj.tolist()
    return str(obj)


def to_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_json_default)


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _chunks(ids: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    """Bounded IN (...) lists (SQLite's host-parameter limit)."""
    return (ids[i:i + size] for i in range(0, len(ids), size))


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Store:
    """Handle on a results database.  Cheap to construct: nothing is opened until used."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        try:
            self._url = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"store URL {url!r} is not a valid SQLAlchemy URL "
                             f"(e.g. sqlite:///results.db, postgresql://user@host/db)") from exc
        self.url = url
        self._engine: Engine | None = None
        self._ready = False

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def is_sqlite(self) -> bool:
        return self._url.get_backend_name() == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        db = self._url.database
        if not self.is_sqlite or not db or db == ":memory:":
            return None
        return Path(db)

    def exists(self) -> bool:
        """True when reading could find something (for SQLite: the file exists)."""
        path = self.sqlite_path
        return path is None or path.exists()

    def _get_engine(self) -> Engine:
        if self._engine is None:
            kwargs: dict[str, Any] = {}
            if self.is_sqlite and self.sqlite_path is None:
                kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
            elif self.is_sqlite:
                kwargs = {"connect_args": {"timeout": 30}}
            try:
                self._engine = create_engine(self._url, **kwargs)
            except Exception as exc:  # missing DBAPI driver, bad options
                raise StoreError(f"cannot open store {self.url!r}: {exc}") from exc
            if self.is_sqlite:
                event.listen(self._engine, "connect", _sqlite_on_connect)
        return self._engine

    def _readable(self, table: str = "runs") -> bool:
        if not self.exists():
            return False
        try:
            return inspect(self._get_engine()).has_table(table)
        except DBAPIError as exc:  # server down, bad credentials, not a database file
            raise StoreError(f"cannot read store {self.url!r}: {str(exc.orig).splitlines()[0]}") from exc

    def ensure_schema(self) -> None:
        """Create the tables (first write only) and check the layout version."""
        if self._ready:
            return
        path = self.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = self._get_engine()
        try:
            Base.metadata.create_all(engine)
        except DBAPIError as exc:
            raise StoreError(f"cannot write store {self.url!r}: {str(exc.orig).splitlines()[0]}") from exc
        with Session(engine) as s, s.begin():
            found = s.scalars(select(SchemaVersionRow.version)).all()
            if not found:
                s.add(SchemaVersionRow(version=STORE_SCHEMA_VERSION))
            elif found != [STORE_SCHEMA_VERSION]:
                raise StoreError(f"{self.url}: store schema version {found} but this quest-lab "
                                 f"expects {STORE_SCHEMA_VERSION}; use a new --store")
        self._ready = True

    def _session(self) -> Session:
        self.ensure_schema()
        return Session(self._get_engine(), expire_on_commit=False)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._ready = False

    # -- sweep bookkeeping (driver only) -------------------------------------------------------
    def statuses(self, run_ids: Iterable[str] | None = None) -> dict[str, str]:
        """run_id -> status for the given runs (all runs when None) that are in the store."""
        if not self._readable():
            return {}
        ids = None if run_ids is None else list(run_ids)
        out: dict[str, str] = {}
        with Session(self._get_engine()) as s:
            if ids is None:
                return {rid: st for rid, st in s.execute(select(RunRow.run_id, RunRow.status))}
            for chunk in _chunks(ids):
                rows = s.execute(select(RunRow.run_id, RunRow.status).where(RunRow.run_id.in_(chunk)))
                out.update((rid, st) for rid, st in rows)
        return out

    def register_sweep(self, name: str, spec: dict[str, Any], path: str | None,
                       runs: Sequence[tuple[str, RunConfig, str]]) -> int:
        """Record the sweep and its grid: new runs become `pending`.  Returns how many were new.

        `runs` holds (run_id, config, data_identity).  One transaction.
        """
        now = _now()
        with self._session() as s, s.begin():
            row = s.get(SweepRow, name)
            if row is None:
                s.add(SweepRow(name=name, spec=to_json(spec), path=path, created_at=now, updated_at=now))
            else:
                row.spec, row.path, row.updated_at = to_json(spec), path, now
            s.flush()
            ids = [r[0] for r in runs]
            existing: set[str] = set()
            members: set[str] = set()
            for chunk in _chunks(ids):
                existing.update(s.scalars(select(RunRow.run_id).where(RunRow.run_id.in_(chunk))))
                members.update(s.scalars(select(SweepRunRow.run_id).where(
                    SweepRunRow.sweep == name, SweepRunRow.run_id.in_(chunk))))
            new = 0
            for run_id, cfg, data_id in runs:
                if run_id not in existing:
                    s.add(self._pending_row(run_id, name, cfg, data_id, now))
                    new += 1
                if run_id not in members:
                    s.add(SweepRunRow(sweep=name, run_id=run_id))
        return new

    @staticmethod
    def _pending_row(run_id: str, sweep: str, cfg: RunConfig, data_id: str, now: datetime) -> RunRow:
        return RunRow(
            run_id=run_id, sweep=sweep, status="pending", source=SOURCE_OURS,
            config=to_json(cfg.to_dict()), size=cfg.size, n_params=float(cfg.n_params),
            tokens=float(cfg.token_budget), tokens_per_param=cfg.tokens_per_param,
            w_bits=float(cfg.w_bits), a_bits=float(cfg.a_bits), quantizer=cfg.quantizer,
            precision=cfg.precision_label, seed=cfg.seed, data_identity=data_id, attempts=0,
            created_at=now,
        )

    def mark_running(self, run_id: str, attempt: int = 1) -> None:
        with self._session() as s, s.begin():
            row = self._require(s, run_id)
            row.status, row.started_at, row.attempts = "running", _now(), attempt
            row.host = socket.gethostname()

    def release(self, run_ids: Iterable[str]) -> int:
        """Put runs left `running` by an interrupted driver back to `pending`; returns how many."""
        ids = list(run_ids)
        if not ids:
            return 0
        with self._session() as s, s.begin():
            return s.execute(update(RunRow).where(RunRow.run_id.in_(ids), RunRow.status == "running")
                             .values(status="pending", started_at=None)).rowcount

    def record_result(self, run_id: str, result: RunResult, attempts: int = 1) -> str:
        """Store a worker's result and its curves in one transaction; returns the stored status.

        A `completed` result whose final eval loss is NaN/inf is stored `diverged`.
        """
        status = result.status if result.status in ("completed", "diverged", "failed") else "failed"
        if status == "completed" and not _finite(result.final_eval_loss):
            status = "diverged"
        with self._session() as s, s.begin():
            row = self._require(s, run_id)
            row.status = status
            row.final_eval_loss = result.final_eval_loss if _finite(result.final_eval_loss) else None
            row.final_train_loss = result.final_train_loss if _finite(result.final_train_loss) else None
            row.n_params, row.tokens = float(result.n_params), float(result.tokens)
            row.steps, row.attempts = result.steps, attempts
            row.wall_time_s, row.tokens_per_s = result.wall_time_s, result.tokens_per_s
            row.device, row.hardware = result.device, result.hardware
            row.versions = to_json(result.versions)
            row.data_identity = result.data_identity or row.data_identity
            row.error = result.error
            row.metrics = to_json({"final_eval_loss_raw": repr(result.final_eval_loss),
                                   "final_train_loss_raw": repr(result.final_train_loss)})
            row.finished_at = _now()
            s.query(CurveRow).filter(CurveRow.run_id == run_id).delete()
            for kind, curve in (("train", result.train_curve), ("eval", result.eval_curve)):
                seen: set[int] = set()
                for step, tokens, loss in curve:
                    if int(step) in seen:
                        continue
                    seen.add(int(step))
                    s.add(CurveRow(run_id=run_id, kind=kind, step=int(step), tokens=float(tokens),
                                   loss=float(loss) if _finite(loss) else None))
        return status

    def record_failure(self, run_id: str, error: str, attempts: int) -> None:
        with self._session() as s, s.begin():
            row = self._require(s, run_id)
            row.status, row.error, row.attempts, row.finished_at = "failed", error[-8000:], attempts, _now()

    @staticmethod
    def _require(s: Session, run_id: str) -> RunRow:
        row = s.get(RunRow, run_id)
        if row is None:
            raise StoreError(f"run {run_id} is not in the store (register the sweep first)")
        return row

    # -- imported runs ---------------------------------------------------------------------------
    def import_runs(self, sweep: str, source: str, records: Sequence[dict[str, Any]]) -> int:
        """Insert external runs (keys: run_id, N, D, loss, w_bits, a_bits, quantizer, extra) as
        `completed` rows of sweep `sweep`.  Idempotent by run_id.  Returns how many were new."""
        now = _now()
        with self._session() as s, s.begin():
            if s.get(SweepRow, sweep) is None:
                s.add(SweepRow(name=sweep, spec=to_json({"source": source}), path=None,
                               created_at=now, updated_at=now))
                s.flush()
            ids = [r["run_id"] for r in records]
            existing: set[str] = set()
            for chunk in _chunks(ids):
                existing.update(s.scalars(select(RunRow.run_id).where(RunRow.run_id.in_(chunk))))
            members = set(s.scalars(select(SweepRunRow.run_id).where(SweepRunRow.sweep == sweep)))
            new = 0
            for r in records:
                rid = r["run_id"]
                if rid not in existing:
                    existing.add(rid)
                    new += 1
                    w, a, q = float(r["w_bits"]), float(r["a_bits"]), str(r["quantizer"])
                    s.add(RunRow(
                        run_id=rid, sweep=sweep, status="completed", source=source,
                        config=to_json(r.get("extra", {})), n_params=float(r["N"]), tokens=float(r["D"]),
                        tokens_per_param=float(r["D"]) / float(r["N"]), w_bits=w, a_bits=a, quantizer=q,
                        precision="bf16" if w >= 16 and a >= 16 else f"{q}:w{w:g}a{a:g}",
                        final_eval_loss=float(r["loss"]), attempts=0, created_at=now, finished_at=now,
                    ))
                if rid not in members:
                    members.add(rid)
                    s.add(SweepRunRow(sweep=sweep, run_id=rid))
        return new

    # -- reads (analysis interface) -------------------------------------------------------------
    def runs_frame(self, sweep: str | None = None,
                   statuses: tuple[str, ...] | None = ("completed",)) -> pd.DataFrame:
        """One row per run; `loss` is the final eval loss.  statuses=None: every status."""
        if not self._readable():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in RUN_COLUMNS})
        q = select(RunRow)
        if sweep is not None:
            q = q.join(SweepRunRow, SweepRunRow.run_id == RunRow.run_id).where(SweepRunRow.sweep == sweep)
        if statuses is not None:
            q = q.where(RunRow.status.in_(list(statuses)))
        q = q.order_by(RunRow.created_at, RunRow.run_id)
        with Session(self._get_engine()) as s:
            rows = s.scalars(q).all()
            records = [{
                "run_id": r.run_id, "sweep": sweep if sweep is not None else r.sweep,
                "status": r.status, "size": r.size, "N": r.n_params, "D": r.tokens,
                "w_bits": r.w_bits, "a_bits": r.a_bits, "quantizer": r.quantizer, "seed": r.seed,
                "loss": r.final_eval_loss, "final_train_loss": r.final_train_loss,
                "wall_time_s": r.wall_time_s, "tokens_per_s": r.tokens_per_s, "device": r.device,
                "source": r.source, "precision": r.precision, "tokens_per_param": r.tokens_per_param,
                "steps": r.steps, "attempts": r.attempts, "error": r.error, "hardware": r.hardware,
                "host": r.host, "data_identity": r.data_identity, "created_at": r.created_at,
                "started_at": r.started_at, "finished_at": r.finished_at,
            } for r in rows]
        return pd.DataFrame.from_records(records, columns=list(RUN_COLUMNS))

    def run_configs(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """run_id -> stored config JSON (our runs: the resolved RunConfig)."""
        if not self._readable():
            return {}
        ids = list(run_ids)
        with Session(self._get_engine()) as s:
            rows = s.execute(select(RunRow.run_id, RunRow.config).where(RunRow.run_id.in_(ids)))
            return {rid: json.loads(cfg) for rid, cfg in rows}

    def curves(self, run_ids: Iterable[str]) -> pd.DataFrame:
        ids = list(run_ids)
        if not ids or not self._readable():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in CURVE_COLUMNS})
        with Session(self._get_engine()) as s:
            rows = s.scalars(select(CurveRow).where(CurveRow.run_id.in_(ids))
                             .order_by(CurveRow.run_id, CurveRow.kind, CurveRow.step)).all()
            records = [(r.run_id, r.step, r.tokens, r.loss, r.kind) for r in rows]
        return pd.DataFrame.from_records(records, columns=list(CURVE_COLUMNS))

    def save_fit(self, law: str, payload: dict[str, Any], sweep: str | None = None) -> int:
        with self._session() as s, s.begin():
            row = FitRow(law=law, created_at=_now(), sweep=sweep, payload=to_json(payload))
            s.add(row)
            s.flush()
            return int(row.id)

    def latest_fit(self, law: str | None = None) -> dict[str, Any] | None:
        """The newest fit (of `law`, if given) as {id, law, created_at, sweep, payload}."""
        if not self._readable("fits"):
            return None
        q = select(FitRow).order_by(FitRow.id.desc()).limit(1)
        if law is not None:
            q = q.where(FitRow.law == law)
        with Session(self._get_engine()) as s:
            row = s.scalars(q).first()
            if row is None:
                return None
            return {"id": row.id, "law": row.law, "created_at": row.created_at, "sweep": row.sweep,
                    "payload": json.loads(row.payload)}
