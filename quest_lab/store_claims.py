"""Run claims in the store (a mixin of `quest_lab.store.Store`): which driver holds which run.

A driver claims a run with one conditional UPDATE (pending → running, owner = the driver), refreshes
`heartbeat_at` on the runs it holds, and only the holder records a run's result (`_owned`); a claim whose
heartbeat is older than its TTL, or whose owner is known dead, is retaken.  The policy (owner ids,
heartbeat thread, dead-process detection) lives in `quest_lab.sweep.claims`.
"""
from __future__ import annotations

import socket
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from quest_lab.store_db import StoreError, chunks
from quest_lab.store_tables import RunRow


class ClaimLost(StoreError):
    """This driver no longer holds the run (its claim expired and another driver took it)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ClaimsMixin:
    """Needs `_write()`, `_read()` and `_readable()` from the Store."""

    def claim(self, run_id: str, owner: str, *, ttl_s: float, retake_failed: bool = False,
              dead_owner: str | None = None) -> bool:
        """Atomically take a run for `owner` (status → running); False when it is done, or held by a
        live claim.  Claimable: pending (and failed with `retake_failed`), running with a heartbeat older
        than `ttl_s` (or none), and running under `dead_owner` (a driver known to be gone)."""
        now = _now()
        claimable = ["pending"] + (["failed"] if retake_failed else [])
        stale = and_(RunRow.status == "running",
                     or_(RunRow.heartbeat_at.is_(None), RunRow.heartbeat_at < now - timedelta(seconds=ttl_s)))
        cond = or_(RunRow.status.in_(claimable), stale)
        if dead_owner:
            cond = or_(cond, and_(RunRow.status == "running", RunRow.owner == dead_owner))
        with self._write() as s:
            got = s.execute(update(RunRow).where(RunRow.run_id == run_id, cond).values(
                status="running", owner=owner, heartbeat_at=now, started_at=now, host=socket.gethostname(),
            ).execution_options(synchronize_session=False)).rowcount
        return got == 1

    def holder(self, run_id: str) -> tuple[str, str | None, datetime | None] | None:
        """(status, owner, heartbeat_at) of a run, None when it is not in the store."""
        if not self._readable():
            return None
        with self._read() as s:
            row = s.execute(select(RunRow.status, RunRow.owner, RunRow.heartbeat_at)
                            .where(RunRow.run_id == run_id)).first()
        return None if row is None else (row[0], row[1], row[2])

    def heartbeat(self, owner: str) -> int:
        """Refresh every claim of `owner`; returns how many it holds."""
        with self._write() as s:
            return s.execute(update(RunRow).where(RunRow.owner == owner, RunRow.status == "running")
                             .values(heartbeat_at=_now()).execution_options(synchronize_session=False)).rowcount

    def mark_running(self, run_id: str, attempt: int = 1, owner: str | None = None) -> bool:
        """Record an attempt.  With `owner`: only while that owner holds the claim (False if not)."""
        now = _now()
        with self._write() as s:
            q = update(RunRow).where(RunRow.run_id == run_id)
            values: dict[str, Any] = {"attempts": attempt, "heartbeat_at": now}
            if owner is not None:
                q = q.where(RunRow.owner == owner, RunRow.status == "running")
            else:
                values.update(status="running", started_at=now, host=socket.gethostname())
            got = s.execute(q.values(**values).execution_options(synchronize_session=False)).rowcount
        if not got and owner is None:
            raise StoreError(f"run {run_id} is not in the store (register the sweep first)")
        return got == 1

    def release(self, run_ids: Iterable[str] | None = None, owner: str | None = None) -> int:
        """Put `running` runs (of `owner`, among `run_ids`) back to `pending`; returns how many."""
        ids = None if run_ids is None else list(run_ids)
        if (ids is not None and not ids) or not self._readable():
            return 0
        conds = [RunRow.status == "running"]
        if owner is not None:
            conds.append(RunRow.owner == owner)
        n = 0
        with self._write() as s:
            for chunk in ([None] if ids is None else list(chunks(ids))):
                where = conds + ([RunRow.run_id.in_(chunk)] if chunk is not None else [])
                n += s.execute(update(RunRow).where(*where).values(
                    status="pending", started_at=None, owner=None, heartbeat_at=None,
                ).execution_options(synchronize_session=False)).rowcount
        return n

    def _owned(self, s: Session, run_id: str, owner: str | None) -> RunRow:
        row = s.get(RunRow, run_id, with_for_update=owner is not None)
        if row is None:
            raise StoreError(f"run {run_id} is not in the store (register the sweep first)")
        if owner is not None and (row.owner != owner or row.status != "running"):
            raise ClaimLost(f"run {run_id} is no longer claimed by this driver (now {row.status}, "
                            f"owner {row.owner}); its result was not stored")
        return row

