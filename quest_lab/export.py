"""`quest-lab export`: the store's runs (one row each) or their loss curves (one row per logged point) as
CSV, Parquet or JSON Lines, for pandas, DuckDB, Polars, W&B tables or a spreadsheet.

The columns and their meaning are defined here once (`RUNS`, `CURVES`); `quest-lab export --schema` prints
them and the README's table is checked against them.  Units: losses in nats per token, times in seconds,
timestamps in UTC (ISO 8601 in CSV and JSON Lines); a missing value is empty in CSV and null elsewhere.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: `--help` and `export --schema` never load pandas
    import pandas as pd

# column -> (type, meaning); the order is the file's column order
RUNS: dict[str, tuple[str, str]] = {
    "run_id": ("string", "content hash of the resolved config, data identity and schema version (16 hex digits; "
                         "imported runs: a hash of the row)"),
    "sweep": ("string", "the sweep that registered the run (`train` for `quest-lab train`)"),
    "status": ("string", "pending, running, completed, diverged or failed"),
    "size": ("string", "model size name (`quest-lab sizes`); empty for imported runs"),
    "N": ("float", "non-embedding parameters"),
    "D": ("float", "training tokens: planned until the run finishes, then the tokens actually seen"),
    "w_bits": ("float", "weight bits (16 = not quantized; 1.58 = ternary)"),
    "a_bits": ("float", "activation bits (16 = not quantized)"),
    "g_bits": ("float", "backward (gradient) bits (16 = not quantized)"),
    "group_size": ("int", "quantization group size along a row (empty = one scale per row)"),
    "quantizer": ("string", "quantizer name (`quest-lab quantizers`); bf16 for full precision"),
    "seed": ("int", "seed of initialisation and batch order"),
    "loss": ("float", "final eval loss, nats per token (completed runs only)"),
    "final_train_loss": ("float", "last training-batch loss, nats per token"),
    "wall_time_s": ("float", "wall time of the run, seconds (data loading included)"),
    "tokens_per_s": ("float", "training throughput, tokens per second"),
    "device": ("string", "cpu or cuda"),
    "source": ("string", "`quest-lab` for our runs, else the imported file"),
    "precision": ("string", "precision label <quantizer>:w<w>a<a>[b<g>][g<G>], or bf16"),
    "tokens_per_param": ("float", "D/N as the sweep asked for it (empty when it gave tokens)"),
    "steps": ("int", "optimizer steps taken (D = steps × batch size × sequence length)"),
    "attempts": ("int", "attempts used (retries after an error)"),
    "error": ("string", "failed runs: 'Type: message' then the traceback; diverged runs: where the loss blew up"),
    "hardware": ("string", "device name (GPU model, or CPU and threads)"),
    "host": ("string", "machine that trained the run"),
    "data_identity": ("string", "hash of the corpus and tokenizer the run trained on"),
    "owner": ("string", "the sweep driver that held the run's claim"),
    "created_at": ("timestamp", "when the run was registered (UTC)"),
    "started_at": ("timestamp", "when its last attempt started (UTC)"),
    "finished_at": ("timestamp", "when its result was stored (UTC)"),
    "heartbeat_at": ("timestamp", "its driver's last heartbeat (UTC)"),
}
CURVES: dict[str, tuple[str, str]] = {
    "run_id": ("string", "the run (joins `runs.run_id`)"),
    "kind": ("string", "train (per-step batch loss, at most 200 points per run) or eval (eval loss; the last "
                       "point is the final eval)"),
    "step": ("int", "optimizer step"),
    "tokens": ("float", "training tokens seen at that step"),
    "loss": ("float", "loss at that step, nats per token (empty where non-finite)"),
}
TABLES: dict[str, dict[str, tuple[str, str]]] = {"runs": RUNS, "curves": CURVES}
FORMATS: dict[str, tuple[str, ...]] = {"csv": (".csv",), "parquet": (".parquet", ".pq"), "jsonl": (".jsonl", ".ndjson")}


def format_of(path: Path) -> str | None:
    """The format its extension names (None when it names none)."""
    suffix = path.suffix.lower()
    return next((fmt for fmt, exts in FORMATS.items() if suffix in exts), None)


def ordered(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The documented columns first, in schema order; any other column the store adds, after them."""
    schema = TABLES[table]
    cols = [c for c in schema if c in frame.columns] + [c for c in frame.columns if c not in schema]
    return frame[cols]


def writer(fmt: str, frame: pd.DataFrame) -> Callable[[Path], None]:
    """A function writing `frame` to a path in `fmt` (csv, parquet or jsonl)."""
    if fmt == "csv":
        return lambda p: frame.to_csv(p, index=False, date_format="%Y-%m-%dT%H:%M:%S.%f%z")
    if fmt == "parquet":
        return lambda p: frame.to_parquet(p, index=False)
    if fmt == "jsonl":
        return lambda p: frame.to_json(p, orient="records", lines=True, date_format="iso", date_unit="us",
                                       force_ascii=False)
    raise ValueError(f"format {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")


def schema_text(table: str) -> str:
    """The schema as text: one `column  type  meaning` line per column."""
    schema = TABLES[table]
    width = max(map(len, schema))
    return "\n".join(f"{name:<{width}}  {kind:<9}  {meaning}" for name, (kind, meaning) in schema.items())
