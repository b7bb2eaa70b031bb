"""Fake train functions for sweep tests (module level, so Ray workers can import them by name).

They build a plausible RunResult from the config without training: loss follows a Chinchilla-like
law of N, D and precision, plus a seed-dependent wiggle, so fits on fake data are meaningful.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

from quest_lab.run import RunConfig, RunResult


def fake_loss(cfg: RunConfig) -> float:
    n, d = cfg.n_params, cfg.token_budget
    eff = 1.0 if cfg.w_bits >= 16 else 1 - math.exp(-min(cfg.w_bits, cfg.a_bits) / 2.0)
    return 1.8 + 400.0 / (n * eff) ** 0.34 + 2000.0 / d ** 0.37 + 0.001 * (cfg.seed % 7)


def data_identity(cfg: RunConfig) -> str:
    """What the real train() reports: the identity of the token stream it loaded."""
    from quest_lab.corpus import data_identity as ident

    return ident(cfg.corpus, cfg.tokenizer, cfg.vocab_size)


def _result(cfg: RunConfig, loss: float, status: str = "completed", identity: str = "") -> RunResult:
    steps = 10
    curve = [(s, (s + 1) * cfg.token_budget // steps, loss + 1.0 / (s + 1)) for s in range(steps)]
    return RunResult(
        config=cfg.to_dict(), status=status, n_params=cfg.n_params, tokens=cfg.token_budget,
        w_bits=cfg.w_bits, a_bits=cfg.a_bits, quantizer=cfg.quantizer, final_eval_loss=loss,
        final_train_loss=loss + 0.01, steps=steps, train_curve=curve,
        eval_curve=[(steps - 1, cfg.token_budget, loss)], wall_time_s=0.01, tokens_per_s=1e6,
        device="cpu", hardware="fake", versions={"fake": "1"}, data_identity=identity,
    )


def fake_train(cfg: RunConfig) -> RunResult:
    return _result(cfg, fake_loss(cfg), identity=data_identity(cfg))


def slow_train(cfg: RunConfig) -> RunResult:
    """fake_train after sleeping QUEST_LAB_FAKE_SLEEP seconds (default 0.5)."""
    time.sleep(float(os.environ.get("QUEST_LAB_FAKE_SLEEP", "0.5")))
    return fake_train(cfg)


def raising_train(cfg: RunConfig) -> RunResult:
    """Always raises; when QUEST_LAB_FAKE_COUNT_DIR is set, leaves one file per call there."""
    count_dir = os.environ.get("QUEST_LAB_FAKE_COUNT_DIR")
    if count_dir:
        Path(count_dir).mkdir(parents=True, exist_ok=True)
        (Path(count_dir) / f"{cfg.seed}-{time.time_ns()}-{os.getpid()}").touch()
    raise RuntimeError(f"boom: simulated crash for size={cfg.size} seed={cfg.seed}")


def nan_train(cfg: RunConfig) -> RunResult:
    """Claims success but the loss is NaN: the store must record the run as diverged."""
    return _result(cfg, float("nan"), identity=data_identity(cfg))


def diverged_train(cfg: RunConfig) -> RunResult:
    return _result(cfg, float("inf"), status="diverged", identity=data_identity(cfg))


def seed_raises_train(cfg: RunConfig) -> RunResult:
    """Raises for odd seeds, fake_train otherwise (mixed outcomes in one sweep)."""
    if cfg.seed % 2:
        raise ValueError(f"odd seed {cfg.seed}")
    return fake_train(cfg)


def interrupt_train(cfg: RunConfig) -> RunResult:
    """Ctrl-C arrives while seed 2 trains (seeds 0 and 1 finish first)."""
    if cfg.seed == 2:
        raise KeyboardInterrupt
    return fake_train(cfg)


def counting_train(cfg: RunConfig) -> RunResult:
    """slow_train that leaves one file per call in QUEST_LAB_FAKE_COUNT_DIR, named after the run's
    config (so the test counts how often each run was trained) and the process that trained it."""
    count_dir = Path(os.environ["QUEST_LAB_FAKE_COUNT_DIR"])
    count_dir.mkdir(parents=True, exist_ok=True)
    key = f"{cfg.size}_w{cfg.w_bits:g}_a{cfg.a_bits:g}_s{cfg.seed}"
    (count_dir / f"{key}.{os.getpid()}.{time.time_ns()}").touch()
    return slow_train(cfg)


def chained_error_train(cfg: RunConfig) -> RunResult:
    """Raises an error chained to another, each with ~2.5 KB of message: a ~5 KB+ traceback."""
    try:
        raise KeyError("inner " + "k" * 2500)
    except KeyError as inner:
        raise RuntimeError("outer: the trial broke\n" + "detail " * 400) from inner


def markup_error_train(cfg: RunConfig) -> RunResult:
    """Raises an error whose text is rich markup (it must be shown literally, never interpreted)."""
    raise ValueError("[/bold] closing tag and [link=file:///etc/passwd]link[/link]")


def other_data_train(cfg: RunConfig) -> RunResult:
    """Claims to have trained on other data than planned (a worker with a different corpus)."""
    return _result(cfg, fake_loss(cfg), identity="0000000000000000:byte")
