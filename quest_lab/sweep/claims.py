"""Run claims: which driver trains which run, so several drivers can share one sweep and one store.

A driver has an owner id `host/pid-namespace:pid:tag`.  Before a run trains, `Claims.claim` takes it in
the store with one conditional UPDATE (`Store.claim`: pending → running, owner = this driver); a second
driver's UPDATE then matches no row, so it skips the run.  While the driver lives, a heartbeat thread
refreshes `heartbeat_at` on every run it holds (every TTL/4).  A claim is retaken when its heartbeat is
older than the TTL (a dead driver on any machine; clocks must agree to well within the TTL), or at once
when its owner is a process of this machine that no longer exists (a SIGKILLed driver).  On exit, the
driver puts the runs it still holds back to pending.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from typing import TYPE_CHECKING

from quest_lab.store_db import StoreError

if TYPE_CHECKING:
    from quest_lab.store import Store

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 120.0
MIN_TTL_S = 1.0


def host_key() -> str:
    """This machine and PID namespace: two containers with one hostname still differ."""
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = 0
    return f"{socket.gethostname()}/{ns}"


def new_owner() -> str:
    return f"{host_key()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True only when `owner` is a process of this machine (and PID namespace) that no longer runs."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid = parts[0], int(parts[1])
    if host != host_key() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, under another user
        return False
    return False


class Claims:
    """This driver's claims on runs; a context manager that runs the heartbeat and releases on exit."""

    def __init__(self, store: Store, *, ttl_s: float = DEFAULT_TTL_S, retake_failed: bool = False) -> None:
        if not ttl_s >= MIN_TTL_S:
            raise ValueError(f"claim TTL {ttl_s!r} s must be >= {MIN_TTL_S:g} s")
        self.store, self.ttl_s, self.retake_failed = store, float(ttl_s), retake_failed
        self.owner = new_owner()
        self.held: set[str] = set()
        self.lost: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, run_id: str) -> bool:
        """Take `run_id` for this driver; False when it is done or another live driver holds it."""
        holder = self.store.holder(run_id)
        dead = None
        if holder is not None and holder[0] == "running" and holder[1] and owner_is_dead(holder[1]):
            dead = holder[1]
        if not self.store.claim(run_id, self.owner, ttl_s=self.ttl_s, retake_failed=self.retake_failed,
                                dead_owner=dead):
            return False
        if holder is not None and holder[0] == "running":
            log.info("run %s: took over the claim of %s (%s)", run_id, holder[1],
                     "process gone" if dead else "heartbeat expired")
        self.held.add(run_id)
        return True

    def done(self, run_id: str) -> None:
        self.held.discard(run_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                self.store.heartbeat(self.owner)
            except StoreError as exc:  # keep trying: the claims expire only after the TTL
                log.warning("heartbeat failed: %s", exc)

    def __enter__(self) -> "Claims":
        self._thread = threading.Thread(target=self._beat, name="quest-lab-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.held:
            try:
                n = self.store.release(sorted(self.held), owner=self.owner)
                log.debug("released %d unfinished claim(s)", n)
            except StoreError as exc:
                log.warning("could not release %d claim(s) (they expire after %g s): %s",
                            len(self.held), self.ttl_s, exc)
            self.held.clear()
