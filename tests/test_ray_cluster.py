"""A real Ray cluster: a separate head process (`ray start --head --block` on free local ports, its own
temp dir) and a sweep sent to it with `--address`, then the head is stopped (SIGTERM to the process this
test started, then its process group; never `ray stop`, which would stop every Ray on the machine)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from conftest import free_port
from quest_lab.store import Store

import ray  # a hard dependency: a broken install fails here, never skips
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4, "device": "cpu",
        "eval_tokens": 256, "quantizer": "quest"}


@pytest.fixture(scope="module")
def ray_head():
    """HOST:PORT of a Ray head started for this module."""
    if ray.is_initialized():
        ray.shutdown()
    ray_bin = Path(sys.executable).parent / "ray"
    temp = Path(tempfile.mkdtemp(prefix="qlray", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = free_port()
    lo = 20000 + (os.getpid() % 200) * 50
    ports = {flag: free_port() for flag in ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                            "--metrics-export-port", "--runtime-env-agent-port")}
    cmd = [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
           f"--min-worker-port={lo}", f"--max-worker-port={lo + 49}", *(f"{k}={v}" for k, v in ports.items())]
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    log = open(temp / "head.log", "w")  # noqa: SIM115 - closed below
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not (temp / "ray_current_cluster").exists():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head failed: {(temp / 'head.log').read_text()[-500:]}")
            time.sleep(0.5)
        yield address
    finally:
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # anything of its process group left behind
        except ProcessLookupError:
            pass
        head.wait(timeout=30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_sweep_on_a_separate_ray_head_with_address(ray_head: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    doc = {"name": "cluster", "base": BASE, "grid": {"size": ["nano"], "bits": [4, 16], "tokens": [1024], "seed": [0, 1]},
           "resources": {"cpus": 1}, "store": url}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert not ray.is_initialized()
    res = CliRunner().invoke(app, ["sweep", str(path), "--address", ray_head, "--no-progress",
                                   "--train-fn", "sweep_fakes:fake_train"])
    assert res.exit_code == 0, res.output
    assert "4 completed" in res.output and "executor ray" in res.output, res.output
    assert not ray.is_initialized()  # the driver disconnected; the cluster keeps running
    frame = Store(url).runs_frame()
    assert len(frame) == 4 and (frame.status == "completed").all()
    assert frame.owner.nunique() == 1 and frame.host.notna().all()
    res = CliRunner().invoke(app, ["sweep", str(path), "--address", ray_head, "--no-progress",
                                   "--train-fn", "sweep_fakes:fake_train"])
    assert res.exit_code == 0 and "4 total, 4 done, 0 to run" in res.output, res.output
