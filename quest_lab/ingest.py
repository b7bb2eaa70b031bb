"""Ingestion of run tables from outside (CSV): the one column normaliser behind `quest-lab import`
(rows into the store) and `quest-lab fit --csv` (rows straight into a fit).

Fields: N (non-embedding parameters), D (training tokens), C (training FLOPs), loss, w_bits, a_bits,
quantizer.  A CSV column becomes a field by, in this order:
  1. an explicit mapping (`import --map "COLUMN=FIELD"`; the column must exist, the field be known);
  2. its name equals the field's, ignoring case;
  3. a known alias, ignoring case: "Model Size", model_size, params → N; "Training FLOP", flops → C;
     tokens → D (Epoch AI's Chinchilla extraction uses "Model Size" and "Training FLOP").
Without a D column, D = C / (6·N) (`tokens_from_flops`).  Other columns are kept as they are.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FIELDS: tuple[str, ...] = ("N", "D", "C", "loss", "w_bits", "a_bits", "quantizer")
PRECISION_FIELDS: tuple[str, ...] = ("w_bits", "a_bits", "quantizer")
ALIASES: dict[str, str] = {"model size": "N", "model_size": "N", "params": "N", "training flop": "C",
                           "flops": "C", "tokens": "D"}


class IngestError(ValueError):
    """A column mapping that cannot work; the message names the columns and fields."""


def column_map(columns: Iterable[Any], mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """field -> CSV column, by the rules above."""
    columns = [str(c) for c in columns]
    mapping = dict(mapping or {})
    bad = sorted({f for f in mapping.values() if f not in FIELDS})
    if bad:
        raise IngestError(f"--map names unknown field(s) {', '.join(bad)}; allowed: {', '.join(FIELDS)}")
    missing = sorted(c for c in mapping if c not in columns)
    if missing:
        raise IngestError(f"--map names column(s) {', '.join(map(repr, missing))} that the file lacks; "
                          f"columns: {', '.join(columns)}")
    out = {field: col for col, field in mapping.items()}
    for rule in (lambda c: next((f for f in FIELDS if f.lower() == c.lower()), None),
                 lambda c: ALIASES.get(c.lower())):
        for col in columns:
            field = rule(col)
            if field is not None and field not in out and col not in mapping and col not in out.values():
                out[field] = col
    return out


def tokens_from_flops(flops: Any, n_params: Any) -> Any:
    """D = C / (6·N): training FLOPs to tokens (Kaplan et al. 2020, C ≈ 6ND)."""
    return flops / (6.0 * n_params)


def canonical_columns(frame: Any, mapping: Mapping[str, str] | None = None) -> Any:
    """A pandas frame with its field columns renamed to the field names and D derived from C."""
    fields = column_map(frame.columns, mapping)
    frame = frame.rename(columns={col: field for field, col in fields.items() if col != field})
    if "D" not in frame.columns and {"C", "N"} <= set(frame.columns):
        frame = frame.assign(D=tokens_from_flops(frame["C"], frame["N"]))
    return frame
