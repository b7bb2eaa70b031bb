"""Test-session environment (set before anything imports triton or ray) and shared fixtures.

PostgreSQL: `pg_server` is `QUEST_LAB_TEST_PG_URL` when set (CI starts Debian's server and sets it),
else a throw-away server this session starts itself with `initdb` / `pg_ctl` (from PATH or
/usr/lib/postgresql/*/bin; as the `postgres` user when running as root), else the tests that need it
are skipped with the reason.  `pg_url` is a fresh database per test; `store_url` runs a test on SQLite
and on PostgreSQL.
"""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")  # run Triton kernels on the CPU interpreter
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")

PG_ENV = "QUEST_LAB_TEST_PG_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(shutil.which("initdb")).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                  if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


@pytest.fixture(scope="session")
def pg_server():
    """SQLAlchemy URL (of its admin database) of a PostgreSQL server for the tests."""
    from sqlalchemy.engine import make_url

    if os.environ.get(PG_ENV):
        yield make_url(os.environ[PG_ENV])
        return
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(f"no PostgreSQL: set {PG_ENV} or install the server (initdb/pg_ctl); .ci/run does both")
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.skip(f"running as root and there is no 'postgres' user to run a throw-away server; set {PG_ENV}")
    root = Path(tempfile.mkdtemp(prefix="quest-lab-pg-"))
    data = root / "data"
    if user:
        shutil.chown(root, user)
    os.chmod(root, 0o700)
    port = free_port()
    run = dict(user=user, cwd=root, capture_output=True, text=True, timeout=120)
    res = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                          "--no-sync"], **run)
    if res.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {res.stderr.strip()[-300:]}")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    res = subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60",
                          "start"], **run)
    if res.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else res.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"pg_ctl start failed: {log.strip()[-300:]}")
    try:
        yield make_url(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], **run)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the test server (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    name = f"quest_lab_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_server.set(database=name).render_as_string(hide_password=False)
    finally:
        for _ in range(3):
            try:
                with admin.connect() as con:
                    con.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except Exception:  # noqa: BLE001 - a connection still closing: try again
                time.sleep(0.5)
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """The same test on a SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def smoke_csv(tmp_path) -> Path:
    """The synthetic smoke-sweep runs (tests/synthetic.py) as a CSV file."""
    from synthetic import smoke_frame

    path = tmp_path / "runs.csv"
    smoke_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def smoke_store(tmp_path) -> str:
    """The synthetic smoke-sweep runs imported into a fresh SQLite store; its URL."""
    from quest_lab.store import Store
    from synthetic import smoke_frame

    url = f"sqlite:///{tmp_path / 'results.db'}"
    Store(url).import_runs("smoke", "test", smoke_frame().to_dict("records"))
    return url
