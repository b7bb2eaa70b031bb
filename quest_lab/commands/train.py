"""quest-lab train | sizes | quantizers: one run in the foreground, and the registries."""
from __future__ import annotations

import json
import logging
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from quest_lab.commands import console, fail, new_app
from quest_lab.quant.specs import QUANTIZER_SPECS, fmt_bits
from quest_lab.run import BACKENDS, DEVICES, TOKENIZERS, RunConfig
from quest_lab.sizes import MODEL_SIZES, non_embedding_params

app = new_app()
log = logging.getLogger(__name__)

SizeChoice = Enum("SizeChoice", {name: name for name in MODEL_SIZES}, type=str)
QuantizerChoice = Enum("QuantizerChoice", {name: name for name in QUANTIZER_SPECS}, type=str)
TokenizerChoice = Enum("TokenizerChoice", {name: name for name in TOKENIZERS}, type=str)
DeviceChoice = Enum("DeviceChoice", {name: name for name in DEVICES}, type=str)
BackendChoice = Enum("BackendChoice", {name: name for name in BACKENDS}, type=str)


@app.command("train")
def train_command(
    size: Annotated[SizeChoice, typer.Option(help="Model size from the registry (see `quest-lab sizes`).")] = "tiny",
    quantizer: Annotated[QuantizerChoice, typer.Option(help="Quantizer (see `quest-lab quantizers`).")] = "quest",
    w_bits: Annotated[float, typer.Option(help="Weight bits: 1-8, 1.58 (ternary) or 16 (off).")] = 16,
    a_bits: Annotated[float, typer.Option(help="Activation bits: 1-8 or 16 (off).")] = 16,
    tokens: Annotated[Optional[int], typer.Option(help="Token budget D.")] = None,
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
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the RunResult as JSON here.")] = None,
) -> None:
    """Train one model and print its final evaluation loss."""
    from quest_lab.train import train  # heavy imports only when training

    if tokens is None and tokens_per_param is None:
        tokens = 200_000
    try:
        cfg = RunConfig(size=_value(size), quantizer=_value(quantizer), w_bits=w_bits, a_bits=a_bits,
                        tokens=tokens, tokens_per_param=tokens_per_param, seed=seed, corpus=corpus,
                        tokenizer=_value(tokenizer), vocab_size=vocab_size, seq_len=seq_len,
                        batch_size=batch_size, lr=lr, eval_every=eval_every, device=_value(device),
                        backend=_value(backend))
    except ValueError as e:
        fail(str(e))
    if json_path is not None and not json_path.parent.exists():
        fail(f"--json {json_path}: directory {json_path.parent} does not exist")

    console.print(f"[bold]{cfg.size}[/] N={cfg.n_params:,}  {cfg.precision_label}  D={cfg.token_budget:,} tokens")
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} steps"), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("training", total=None, info="")

        def on_step(step: int, total: int, loss: float, tps: float) -> None:
            bar.update(task, completed=step, total=total, info=f"loss {loss:.3f}  {tps:,.0f} tok/s")

        result = train(cfg, progress=on_step)

    table = Table(show_header=False, box=None)
    for key, value in (("status", result.status), ("final eval loss", _fmt(result.final_eval_loss)),
                       ("final train loss", _fmt(result.final_train_loss)), ("N (non-embedding)", f"{result.n_params:,}"),
                       ("D (tokens)", f"{result.tokens:,}"), ("steps", str(result.steps)),
                       ("tokens/s", f"{result.tokens_per_s:,.0f}"), ("wall time", f"{result.wall_time_s:.1f} s"),
                       ("device", result.hardware)):
        table.add_row(key, value)
    if result.error:
        table.add_row("note", result.error)
    console.print(table)
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_dict(), indent=2))
        console.print(f"wrote {json_path}")


@app.command("sizes")
def sizes_command() -> None:
    """List the model-size registry (tiny CPU sizes and the QuEST paper's sizes)."""
    table = Table("name", "n_layer", "n_embd", "n_head", "mlp hidden", "N (non-emb)", "peak LR")
    for name, cfg in MODEL_SIZES.items():
        table.add_row(name, str(cfg.n_layer), str(cfg.n_embd), str(cfg.n_head), str(cfg.mlp_hidden),
                      f"{non_embedding_params(cfg):,}", f"{cfg.peak_lr:g}")
    console.print(table)


@app.command("quantizers")
def quantizers_command() -> None:
    """List the quantizer registry: bits per side, options, what each does and where it comes from."""
    table = Table("name", "weight bits", "activation bits", "options", "description", "citation")
    for name, spec in QUANTIZER_SPECS.items():
        if name != spec.name:
            continue  # aliases
        table.add_row(name + "".join(f" ({a})" for a in spec.aliases), fmt_bits(spec.allowed_bits("weight")),
                      fmt_bits(spec.allowed_bits("activation")),
                      ", ".join(f"{k}={v.default!r}" for k, v in spec.options.items()) or "—",
                      spec.summary, spec.citation)
    console.print(table)


def _value(choice: Enum | str) -> str:
    return choice.value if isinstance(choice, Enum) else choice


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"
