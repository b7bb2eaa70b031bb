"""The results store: SQLAlchemy 2 ORM over any URL (SQLite in WAL mode by default, PostgreSQL for labs).

Tables (ORM rows in `quest_lab.store_tables`, layout owned by the Alembic migrations; engines, errors and
schema checks in `quest_lab.store_db`; claims in `quest_lab.store_claims`): `sweeps`, `runs` (one row per run_id, status pending/running/
completed/diverged/failed), `sweep_runs` (which sweeps contain which runs: a run shared by two grids is
trained once), `curves` (downsampled train/eval loss curves), `fits` (law fits).

Writes happen in sweep drivers, `import` and `fit`; every write is one transaction, so a crash never
leaves a half-written run.  Several drivers may share a store: a run is **claimed** before it trains
(`claim`: a conditional UPDATE from pending to running with the driver as `owner`), the owner keeps a
`heartbeat`, and only the owner records the result; a claim whose heartbeat is older than its TTL is
retaken.  Reads never create the database: on a missing file they return empty frames.  Every error is
a one-line `StoreError` and shows the URL without its password.
"""
from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Float, Integer, inspect, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from quest_lab.quant.specs import precision_label
from quest_lab.run import RunConfig, RunResult
from quest_lab.safe_text import clip_error, display_url, password_of, scrub
from quest_lab.store_claims import ClaimLost, ClaimsMixin
from quest_lab.store_db import WRITE, StoreError, check_revision, chunks, create_or_check, current_revision, db_errors
from quest_lab.store_db import insert_ignore, make_engine, parse_url, sqlite_wal, upgrade
from quest_lab.store_tables import SOURCE_OURS, CurveRow, FitRow, RunRow, SweepRow, SweepRunRow

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///results.db"
__all__ = ["CURVE_COLUMNS", "DEFAULT_URL", "FILTER_COLUMNS", "RUN_COLUMNS", "ClaimLost", "IdentityMismatch",
           "Store", "StoreError"]

# Frame column -> `runs` column (the frame's names are the analysis names: N, D, loss).
FILTER_COLUMNS: dict[str, str] = {
    "run_id": "run_id", "sweep": "sweep", "status": "status", "size": "size", "N": "n_params", "D": "tokens",
    "w_bits": "w_bits", "a_bits": "a_bits", "g_bits": "g_bits", "group_size": "group_size",
    "quantizer": "quantizer", "seed": "seed", "loss": "final_eval_loss",
    "final_train_loss": "final_train_loss", "wall_time_s": "wall_time_s", "tokens_per_s": "tokens_per_s",
    "device": "device", "source": "source", "precision": "precision", "tokens_per_param": "tokens_per_param",
    "steps": "steps", "attempts": "attempts", "error": "error", "hardware": "hardware", "host": "host",
    "data_identity": "data_identity", "owner": "owner",
}
RUN_COLUMNS: tuple[str, ...] = tuple(FILTER_COLUMNS) + ("created_at", "started_at", "finished_at", "heartbeat_at")
CURVE_COLUMNS: tuple[str, ...] = ("run_id", "step", "tokens", "loss", "kind")


class IdentityMismatch(StoreError):
    """A result's data identity is not the one its run was planned (and hashed) with."""


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


def filter_schema() -> dict[str, str]:
    """Kinds of the filterable run columns, derived from the SQL column types."""
    cols = RunRow.__table__.columns
    return {name: ("number" if isinstance(cols[col].type, (Float, Integer)) else "text")
            for name, col in FILTER_COLUMNS.items()}


class Store(ClaimsMixin):
    """Handle on a results database.  Cheap to construct: nothing is opened until used."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self._url = parse_url(url)
        self._password = password_of(self._url)
        self.display_url = display_url(self._url)  # what messages, logs, fits and reports show
        self._engine: Engine | None = None
        self._ready = False  # schema created / checked for writing
        self._checked = False  # revision checked for reading

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

    def files(self) -> list[Path]:
        """The files this store lives in (SQLite: the database, its WAL and shared-memory files)."""
        path = self.sqlite_path
        return [] if path is None else [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")]

    def exists(self) -> bool:
        """True when reading could find something (for SQLite: the file exists)."""
        path = self.sqlite_path
        return path is None or path.exists()

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self._url)
        return self._engine

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        with db_errors(action, self._url):
            yield

    def _readable(self, table: str = "runs") -> bool:
        if not self.exists():
            return False
        with self._errors("read"), self._get_engine().connect() as conn:
            if not inspect(conn).has_table(table):
                return False
            if not self._checked:
                check_revision(current_revision(conn), self._url)
                self._checked = True
        return True

    def ensure_schema(self) -> None:
        """First write: create the tables (Alembic head) or check that the layout is this code's."""
        if self._ready:
            return
        if self.exists():  # refuse an old or newer layout before touching anything
            check_revision(self.revision(), self._url)
        self._prepare_file()
        create_or_check(self._get_engine(), self._url)
        self._ready = self._checked = True

    def _prepare_file(self) -> None:
        """SQLite, before the first write: the folder exists and the file is in WAL mode."""
        path = self.sqlite_path
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                sqlite_wal(path)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot write store {self.display_url}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None

    def upgrade(self) -> tuple[str | None, str]:
        """Migrate the store to this code's layout (`quest-lab db upgrade`); returns (before, after)."""
        self._prepare_file()
        before, after = upgrade(self._get_engine(), self._url)
        self._ready = self._checked = True
        return before, after

    def revision(self) -> str | None:
        """The store's schema revision (None: empty or missing database)."""
        if not self.exists():
            return None
        with self._errors("read"), self._get_engine().connect() as conn:
            return current_revision(conn)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._errors("read"), Session(self._get_engine()) as s:
            yield s

    @contextmanager
    def _write(self) -> Iterator[Session]:
        self.ensure_schema()
        with self._errors("write"), Session(self._get_engine().execution_options(**WRITE),
                                            expire_on_commit=False) as s, s.begin():
            yield s

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._ready = self._checked = False

    # -- sweep bookkeeping ---------------------------------------------------------------------
    def statuses(self, run_ids: Iterable[str] | None = None) -> dict[str, str]:
        """run_id -> status for the given runs (all runs when None) that are in the store."""
        if not self._readable():
            return {}
        ids = None if run_ids is None else list(run_ids)
        out: dict[str, str] = {}
        with self._read() as s:
            if ids is None:
                return {rid: st for rid, st in s.execute(select(RunRow.run_id, RunRow.status))}
            for chunk in chunks(ids):
                rows = s.execute(select(RunRow.run_id, RunRow.status).where(RunRow.run_id.in_(chunk)))
                out.update((rid, st) for rid, st in rows)
        return out

    def register_sweep(self, name: str, spec: dict[str, Any], path: str | None,
                       runs: Sequence[tuple[str, RunConfig, str]]) -> int:
        """Record the sweep and its grid: new runs become `pending`.  Returns how many were new.

        `runs` holds (run_id, config, data_identity).  One transaction; safe against a concurrent
        driver registering the same runs (existing rows are left as they are).
        """
        now = _now()
        ids = [r[0] for r in runs]
        with self._write() as s:
            insert_ignore(s, SweepRow.__table__, [{"name": name, "spec": to_json(spec), "path": path,
                                                    "created_at": now, "updated_at": now}])
            s.execute(update(SweepRow).where(SweepRow.name == name)
                      .values(spec=to_json(spec), path=path, updated_at=now))
            existing: set[str] = set()
            for chunk in chunks(ids):
                existing.update(s.scalars(select(RunRow.run_id).where(RunRow.run_id.in_(chunk))))
            insert_ignore(s, RunRow.__table__, [self._pending_row(rid, name, cfg, data_id, now)
                                                 for rid, cfg, data_id in runs if rid not in existing])
            insert_ignore(s, SweepRunRow.__table__, [{"sweep": name, "run_id": rid} for rid in ids])
        return len(set(ids) - existing)

    @staticmethod
    def _pending_row(run_id: str, sweep: str, cfg: RunConfig, data_id: str, now: datetime) -> dict[str, Any]:
        return dict(
            run_id=run_id, sweep=sweep, status="pending", source=SOURCE_OURS,
            config=to_json(cfg.to_dict()), size=cfg.size, n_params=float(cfg.n_params),
            tokens=float(cfg.token_budget), tokens_per_param=cfg.tokens_per_param,
            w_bits=float(cfg.w_bits), a_bits=float(cfg.a_bits), g_bits=float(cfg.g_bits),
            group_size=cfg.group_size, quantizer=cfg.quantizer, precision=cfg.precision_label,
            seed=cfg.seed, data_identity=data_id, attempts=0,
            metrics="{}", versions="{}", created_at=now,
        )

    def record_result(self, run_id: str, result: RunResult, attempts: int = 1, owner: str | None = None) -> str:
        """Store a worker's result and its curves in one transaction; returns the stored status.

        A `completed` result whose final eval loss is NaN/inf is stored `diverged`.  A result whose data
        identity differs from the run's planned one is refused (IdentityMismatch): the run_id hashes the
        planned identity, so storing it would make the row lie.  With `owner`, only the claim holder writes.
        """
        status = result.status if result.status in ("completed", "diverged", "failed") else "failed"
        if status == "completed" and not _finite(result.final_eval_loss):
            status = "diverged"
        with self._write() as s:
            row = self._owned(s, run_id, owner)
            if row.data_identity and result.data_identity and result.data_identity != row.data_identity:
                raise IdentityMismatch(
                    f"run {run_id} was planned on data {row.data_identity} but the worker trained on "
                    f"{result.data_identity} (corpus or tokenizer differs on the worker); result refused")
            row.status = status
            row.final_eval_loss = result.final_eval_loss if _finite(result.final_eval_loss) else None
            row.final_train_loss = result.final_train_loss if _finite(result.final_train_loss) else None
            row.n_params, row.tokens = float(result.n_params), float(result.tokens)
            row.steps, row.attempts = result.steps, attempts
            row.wall_time_s, row.tokens_per_s = result.wall_time_s, result.tokens_per_s
            row.device, row.hardware = result.device, result.hardware
            row.versions = to_json(result.versions)
            row.data_identity = row.data_identity or result.data_identity
            row.error = None if result.error is None else clip_error(result.error)
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

    def record_failure(self, run_id: str, error: str, attempts: int, owner: str | None = None) -> None:
        with self._write() as s:
            row = self._owned(s, run_id, owner)
            row.status, row.error, row.attempts, row.finished_at = "failed", clip_error(error), attempts, _now()

    # -- imported runs ---------------------------------------------------------------------------
    def import_runs(self, sweep: str, source: str, records: Sequence[dict[str, Any]]) -> int:
        """Insert external runs (keys: run_id, N, D, loss, w_bits, a_bits, quantizer, extra) as
        `completed` rows of sweep `sweep`.  Idempotent by run_id.  Returns how many were new.

        `g_bits` and `group_size` come from the record when it has them, else from the row's own
        columns kept in `extra` (named like the field or an alias, `quest_lab.ingest.optional_values`);
        defaults 16 and per row.  A bad value is a StoreError naming the row; nothing is written."""
        from quest_lab.ingest import IngestError, optional_values

        now = _now()
        ids = [r["run_id"] for r in records]
        rows = []
        for i, r in enumerate(records):
            w, a, q = float(r["w_bits"]), float(r["a_bits"]), str(r["quantizer"])
            try:
                opt = optional_values({**r.get("extra", {}), **{k: r[k] for k in ("g_bits", "group_size") if k in r}})
            except IngestError as exc:
                raise StoreError(f"{source} record {i + 1}: {exc}") from None
            rows.append(dict(
                run_id=r["run_id"], sweep=sweep, status="completed", source=source,
                config=to_json(r.get("extra", {})), n_params=float(r["N"]), tokens=float(r["D"]),
                tokens_per_param=float(r["D"]) / float(r["N"]), w_bits=w, a_bits=a, quantizer=q,
                g_bits=opt["g_bits"], group_size=opt["group_size"],
                precision=precision_label(q, w, a, opt["group_size"], opt["g_bits"]),
                final_eval_loss=float(r["loss"]), attempts=0, metrics="{}", versions="{}",
                created_at=now, finished_at=now,
            ))
        with self._write() as s:
            insert_ignore(s, SweepRow.__table__, [{"name": sweep, "spec": to_json({"source": source}),
                                                    "path": None, "created_at": now, "updated_at": now}])
            existing: set[str] = set()
            for chunk in chunks(ids):
                existing.update(s.scalars(select(RunRow.run_id).where(RunRow.run_id.in_(chunk))))
            unique = {row["run_id"]: row for row in rows if row["run_id"] not in existing}
            insert_ignore(s, RunRow.__table__, list(unique.values()))
            insert_ignore(s, SweepRunRow.__table__, [{"sweep": sweep, "run_id": rid} for rid in dict.fromkeys(ids)])
        return len(unique)

    # -- reads (analysis interface) -------------------------------------------------------------
    def runs_frame(self, sweep: str | None = None, statuses: tuple[str, ...] | None = ("completed",),
                   where: str | None = None) -> pd.DataFrame:
        """One row per run; `loss` is the final eval loss.  statuses=None: every status.  `where` is a
        `quest_lab.filters` filter on the frame's columns, run in SQL (FilterError when invalid)."""
        flt = None
        if where:
            from quest_lab.filters import parse

            flt = parse(where, filter_schema())
        if not self._readable():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in RUN_COLUMNS})
        q = select(RunRow)
        if sweep is not None:
            q = q.join(SweepRunRow, SweepRunRow.run_id == RunRow.run_id).where(SweepRunRow.sweep == sweep)
        if statuses is not None:
            q = q.where(RunRow.status.in_(list(statuses)))
        if flt is not None:
            q = q.where(flt.sql({name: getattr(RunRow, col) for name, col in FILTER_COLUMNS.items()}))
        q = q.order_by(RunRow.created_at, RunRow.run_id)
        with self._read() as s:
            records = []
            for r in s.scalars(q):
                rec = {name: getattr(r, col) for name, col in FILTER_COLUMNS.items()}
                rec.update(sweep=sweep if sweep is not None else r.sweep, created_at=r.created_at,
                           started_at=r.started_at, finished_at=r.finished_at, heartbeat_at=r.heartbeat_at)
                records.append(rec)
        return pd.DataFrame.from_records(records, columns=list(RUN_COLUMNS))

    def run_configs(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """run_id -> stored config JSON (our runs: the resolved RunConfig)."""
        if not self._readable():
            return {}
        out: dict[str, dict[str, Any]] = {}
        with self._read() as s:
            for chunk in chunks(list(run_ids)):
                rows = s.execute(select(RunRow.run_id, RunRow.config).where(RunRow.run_id.in_(chunk)))
                out.update((rid, json.loads(cfg)) for rid, cfg in rows)
        return out

    def curves(self, run_ids: Iterable[str]) -> pd.DataFrame:
        ids = list(run_ids)
        if not ids or not self._readable():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in CURVE_COLUMNS})
        records: list[tuple[Any, ...]] = []
        with self._read() as s:
            for chunk in chunks(ids):
                rows = s.scalars(select(CurveRow).where(CurveRow.run_id.in_(chunk))
                                 .order_by(CurveRow.run_id, CurveRow.kind, CurveRow.step))
                records += [(r.run_id, r.step, r.tokens, r.loss, r.kind) for r in rows]
        return pd.DataFrame.from_records(records, columns=list(CURVE_COLUMNS))

    def save_fit(self, law: str, payload: dict[str, Any], sweep: str | None = None) -> int:
        """Store a fit; its JSON never holds a URL password (user:password@ is masked)."""
        with self._write() as s:
            row = FitRow(law=law, created_at=_now(), sweep=sweep, payload=scrub(to_json(payload)))
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
        with self._read() as s:
            row = s.scalars(q).first()
            if row is None:
                return None
            return {"id": row.id, "law": row.law, "created_at": row.created_at, "sweep": row.sweep,
                    "payload": json.loads(row.payload)}
