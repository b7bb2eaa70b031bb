"""quest-lab train | sizes | quantizers: one run in the foreground, and the registries."""
from __future__ import annotations

import json
import logging
import re
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import (BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from quest_lab.commands import StoreOpt, bad_input, console, fail, new_app, open_store, say
from quest_lab.commands.train_store import TRAIN_SWEEP, RunRecorder
from quest_lab.quant.specs import QUANTIZER_SPECS, fmt_bits
from quest_lab.run import BACKENDS, DEVICES, TOKENIZERS, RunConfig
from quest_lab.sizes import MODEL_SIZES, non_embedding_params
from quest_lab.sweep.spec import SWEEP_NAME

app = new_app()
log = logging.getLogger(__name__)

SizeChoice = Enum("SizeChoice", {name: name for name in MODEL_SIZES}, type=str)
QuantizerChoice = Enum("QuantizerChoice", {name: name for name in QUANTIZER_SPECS}, type=str)
TokenizerChoice = Enum("TokenizerChoice", {name: name for name in TOKENIZERS}, type=str)
DeviceChoice = Enum("DeviceChoice", {name: name for name in DEVICES}, type=str)
BackendChoice = Enum("BackendChoice", {name: name for name in BACKENDS}, type=str)


@app.command("train")
def train_command(
    size: Annotated[SizeChoice, typer.Option(metavar="SIZE", help=f"Model size: {', '.join(MODEL_SIZES)} "
                                             "(see `quest-lab sizes`).")] = "tiny",
    quantizer: Annotated[QuantizerChoice, typer.Option(metavar="NAME", help=f"Quantizer: {', '.join(QUANTIZER_SPECS)} "
                                                       "(see `quest-lab quantizers`).")] = "quest",
    w_bits: Annotated[float, typer.Option(help="Weight bits: 1-8, 1.58 (ternary) or 16 (off).")] = 16,
    a_bits: Annotated[float, typer.Option(help="Activation bits: 1-8 or 16 (off).")] = 16,
    tokens: Annotated[Optional[int], typer.Option(help="Token budget D (rounded to whole batches).")] = None,
    tokens_per_param: Annotated[Optional[float], typer.Option(help="Token budget as D/N.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for init and batch order.")] = 0,
    corpus: Annotated[str, typer.Option(help="'shakespeare', a text file/dir, or a .bin/.npy of token ids.")] = "shakespeare",
    tokenizer: Annotated[TokenizerChoice, typer.Option(help="Byte-level BPE trained locally, or raw bytes.")] = "bpe",
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size.")] = 1024,
    seq_len: Annotated[int, typer.Option(help="Context length.")] = 128,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 16,
    lr: Annotated[Optional[float], typer.Option(help="Peak LR (default: the size's).")] = None,
    eval_every: Annotated[int, typer.Option(help="Evaluate every k steps (0 = only at the end).")] = 0,
    device: Annotated[DeviceChoice, typer.Option(help="Where to train.")] = "auto",
    backend: Annotated[BackendChoice, typer.Option(help="Quantizer backend.")] = "auto",
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the RunResult as JSON here (not over an existing file without --force).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --json file.")] = False,
    store: StoreOpt = None,
    save: Annotated[bool, typer.Option("--store-run/--no-store", help="Store the run (sweep --sweep) so `runs`, "
                                       "`fit` and `report` see it; --no-store only prints it.")] = True,
    sweep: Annotated[str, typer.Option("--sweep", help="Sweep name the run is stored under.")] = TRAIN_SWEEP,
) -> None:
    """Train one model and store its run.

    Prints the final evaluation loss; the run is stored under sweep `train` (see --sweep) unless
    --no-store, so `runs`, `fit` and `report` see it.
    """
    try:
        cfg = RunConfig(size=_value(size), quantizer=_value(quantizer), w_bits=w_bits, a_bits=a_bits,
                        tokens=200_000 if tokens is None and tokens_per_param is None else tokens,
                        tokens_per_param=tokens_per_param, seed=seed, corpus=corpus,
                        tokenizer=_value(tokenizer), vocab_size=vocab_size, seq_len=seq_len,
                        batch_size=batch_size, lr=lr, eval_every=eval_every, device=_value(device),
                        backend=_value(backend))
    except ValueError as e:
        fail(str(e))
    protected = open_store(store).files() if json_path is not None and save else []
    if json_path is not None:
        from quest_lab.outputs import check_file_target

        with bad_input():  # before training: a result that cannot be written is not trained for
            check_file_target(json_path, force=force, protected=protected)
    if save and not re.fullmatch(SWEEP_NAME, sweep):
        fail(f"--sweep {sweep!r} is not a valid sweep name; use letters, digits, '_', '.', '-'")
    from quest_lab.train import planned_steps, train  # heavy imports only when training

    steps = planned_steps(cfg)
    trained = steps * cfg.batch_size * cfg.seq_len
    rounding = (f"D = {cfg.token_budget:,} tokens requested, {trained:,} trained: {steps:,} steps × "
                f"{cfg.batch_size} × {cfg.seq_len} tokens (whole batches)") if trained != cfg.token_budget else (
                f"D = {trained:,} tokens: {steps:,} steps × {cfg.batch_size} × {cfg.seq_len} tokens")
    say(f"{cfg.size}  N = {cfg.n_params:,}  {cfg.precision_label}  {rounding}")
    recorder = RunRecorder.open(store, cfg, sweep) if save else None
    with (recorder or nullcontext()):
        result = _train_with_progress(train, cfg, steps)
        stored = recorder.record(result) if recorder else None
    table = Table(show_header=False, box=None)
    table.add_column("item", no_wrap=True)
    table.add_column("value", overflow="fold")  # long paths and URLs fold, never cut
    for key, value in (("status", result.status), ("final eval loss", _fmt(result.final_eval_loss)),
                       ("final train loss", _fmt(result.final_train_loss)), ("N (non-embedding)", f"{result.n_params:,}"),
                       ("D (tokens)", f"{result.tokens:,}"), ("steps", str(result.steps)),
                       ("tokens/s", f"{result.tokens_per_s:,.0f}"), ("wall time", f"{result.wall_time_s:.1f} s"),
                       ("device", result.hardware), ("stored", stored or "no (--no-store)")):
        table.add_row(key, Text(value))
    if result.error:
        table.add_row("note", Text(result.error))
    console.print(table)
    if json_path is not None:
        from quest_lab.outputs import write_file

        text = json.dumps(result.to_dict(), indent=2)
        with bad_input():
            write_file(json_path, lambda tmp: tmp.write_text(text), force=force, protected=protected)
        say(f"wrote {json_path}")


def _train_with_progress(train, cfg: RunConfig, steps: int):
    """Train under a progress bar that says what happens before the first step (corpus, tokenizer, model)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), StepsColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("loading corpus, tokenizer and model", total=None, info="")

        def on_step(step: int, total: int, loss: float, tps: float) -> None:
            bar.update(task, description="training", completed=step, total=total,
                       info=f"loss {loss:.3f}  {tps:,.0f} tok/s")

        result = train(cfg, progress=on_step)
        bar.update(task, description="trained" if result.status == "completed" else result.status,
                   completed=result.steps, total=max(result.steps, 1))
    return result


class StepsColumn(ProgressColumn):
    """'12/768 steps' once training runs; empty while loading (no '0/None')."""

    def render(self, task) -> Text:
        return Text("" if task.total is None else f"{int(task.completed):,}/{int(task.total):,} steps")


@app.command("sizes")
def sizes_command() -> None:
    """List the model sizes.

    The registry: tiny CPU sizes and the QuEST paper's sizes, with N and peak LR.
    """
    table = Table("name", "n_layer", "n_embd", "n_head", "mlp hidden", "N (non-emb)", "peak LR")
    for name, cfg in MODEL_SIZES.items():
        table.add_row(name, str(cfg.n_layer), str(cfg.n_embd), str(cfg.n_head), str(cfg.mlp_hidden),
                      f"{non_embedding_params(cfg):,}", f"{cfg.peak_lr:g}")
    console.print(table)


@app.command("quantizers")
def quantizers_command() -> None:
    """List the quantizers.

    Each with its bits per side, options, what it does and where it comes from.
    """
    for name, spec in QUANTIZER_SPECS.items():
        if name != spec.name:
            continue  # aliases
        title = Text(name, style="bold")
        if spec.aliases:
            title.append(f" (also: {', '.join(spec.aliases)})")
        console.print(title)
        options = ", ".join(f"{k}={v.default!r}" for k, v in spec.options.items()) or "none"
        for line in (f"bits: weights {fmt_bits(spec.allowed_bits('weight'))}; activations "
                     f"{fmt_bits(spec.allowed_bits('activation'))}", f"options: {options}", spec.summary,
                     f"source: {spec.citation}"):
            console.print(Padding(Text(line), (0, 0, 0, 2)))  # wrapped at the terminal width, never cut


def _value(choice: Enum | str) -> str:
    return choice.value if isinstance(choice, Enum) else choice


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"
