"""Stored fits, listed (`quest-lab fits`) and picked for the report (the latest fit of each law).

Reads the store's `fits` table through the `Store`'s own read session (no writes, never creates the
database); a fit's summary comes from its payload (runs, R², objective, bootstrap, mode, verdict, filters).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from quest_lab.store import Store
from quest_lab.store_tables import FitRow


@dataclass(frozen=True)
class StoredFit:
    id: int
    law: str
    created_at: datetime | None
    sweep: str | None
    payload: dict[str, Any]

    @property
    def record(self) -> dict[str, Any]:
        """What `Store.latest_fit` returns: {id, law, created_at, sweep, payload}."""
        return {"id": self.id, "law": self.law, "created_at": self.created_at, "sweep": self.sweep,
                "payload": self.payload}

    def summary(self) -> dict[str, Any]:
        p = self.payload
        return {"id": self.id, "law": self.law, "created_at": self.created_at, "runs": p.get("n_runs"),
                "r2": p.get("r2"), "objective": p.get("objective"), "bootstrap": p.get("bootstrap"),
                "mode": p.get("mode", "staged"), "verdict": (p.get("evidence") or {}).get("verdict"),
                "where": p.get("where"), "sweep": self.sweep, "source": p.get("source")}


def _payload(text: str) -> dict[str, Any]:
    try:
        out = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def list_fits(store: Store, law: str | None = None, limit: int | None = None) -> list[StoredFit]:
    """Stored fits, newest first (of `law` if given; at most `limit`)."""
    if not store._readable("fits"):  # noqa: SLF001 - the store's own read path (revision checked)
        return []
    q = select(FitRow).order_by(FitRow.id.desc())
    if law is not None:
        q = q.where(FitRow.law == law)
    if limit is not None:
        q = q.limit(limit)
    with store._read() as s:  # noqa: SLF001
        return [StoredFit(r.id, r.law, r.created_at, r.sweep, _payload(r.payload)) for r in s.scalars(q)]


def latest_per_law(store: Store, laws: list[str] | None = None) -> dict[str, StoredFit]:
    """law -> its newest stored fit (every law that has one, or only `laws`)."""
    out: dict[str, StoredFit] = {}
    for fit in list_fits(store):
        if (laws is None or fit.law in laws) and fit.law not in out:
            out[fit.law] = fit
    return out
