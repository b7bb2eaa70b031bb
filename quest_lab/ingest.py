"""Ingestion of run tables from outside (CSV): the one column normaliser behind `quest-lab import`
(rows into the store) and `quest-lab fit --csv` (rows straight into a fit).

Fields: N (non-embedding parameters), D (training tokens), C (training FLOPs), loss, w_bits, a_bits,
quantizer.  A CSV column becomes a field by, in this order:
  1. an explicit mapping (`import --map "COLUMN=FIELD"`; the column must exist, the field be known);
  2. its name equals the field's, ignoring case;
  3. a known alias, ignoring case: "Model Size", model_size, params → N; "Training FLOP", flops → C;
     tokens → D (Epoch AI's Chinchilla extraction uses "Model Size" and "Training FLOP").
Without a D column, D = C / (6·N) (`tokens_from_flops`).  Other columns are kept as they are.

Optional precision fields (issue 15), found by name (any case) or alias only, never by `--map`:
g_bits (backward/gradient bits, default 16; aliases grad_bits, gradient_bits, backward_bits, bwd_bits)
and group_size (one scale per G inputs, empty = per row; aliases group, group size, G).  `fit --csv`
renames them with the other fields; `quest-lab import` reads them from each row (`optional_values`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

FIELDS: tuple[str, ...] = ("N", "D", "C", "loss", "w_bits", "a_bits", "quantizer")
PRECISION_FIELDS: tuple[str, ...] = ("w_bits", "a_bits", "quantizer")
ALIASES: dict[str, str] = {"model size": "N", "model_size": "N", "params": "N", "training flop": "C",
                           "flops": "C", "tokens": "D"}
OPTIONAL_FIELDS: dict[str, Any] = {"g_bits": 16.0, "group_size": None}  # field -> default
OPTIONAL_ALIASES: dict[str, str] = {"grad_bits": "g_bits", "gradient_bits": "g_bits", "backward_bits": "g_bits",
                                    "bwd_bits": "g_bits", "group": "group_size", "group size": "group_size",
                                    "g": "group_size"}


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


def optional_map(columns: Iterable[Any]) -> dict[str, str]:
    """field -> column for the optional fields (g_bits, group_size): by name, then by alias, ignoring case."""
    columns = [str(c) for c in columns]
    out: dict[str, str] = {}
    for rule in (lambda c: c.lower() if c.lower() in OPTIONAL_FIELDS else None,
                 lambda c: OPTIONAL_ALIASES.get(c.lower())):
        for col in columns:
            field = rule(col)
            if field is not None and field not in out and col not in out.values():
                out[field] = col
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and value.strip().lower() in ("", "nan", "none", "null", "per-row", "row"))


def check_g_bits(value: Any) -> float:
    """A backward bit-width: a finite number in (0, 16] (16 = not quantized); IngestError otherwise."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if isinstance(value, bool) or not (math.isfinite(x) and 0 < x <= 16):
        raise IngestError(f"g_bits={value!r} is not valid; allowed: a number of bits in (0, 16] (16 = not quantized)")
    return x


def check_group_size(value: Any) -> int | None:
    """A group size: a whole number >= 1, or empty / "per-row" for one scale per row; IngestError otherwise."""
    if _missing(value):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if isinstance(value, bool) or not (math.isfinite(x) and x >= 1 and x == int(x)):
        raise IngestError(f"group_size={value!r} is not valid; allowed: a whole number >= 1, or empty for per row")
    return int(x)


def optional_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """{"g_bits": float, "group_size": int | None} of one CSV row (column -> value), defaults filled in."""
    cols = optional_map(row)
    g = row[cols["g_bits"]] if "g_bits" in cols else None
    return {"g_bits": OPTIONAL_FIELDS["g_bits"] if _missing(g) else check_g_bits(g),
            "group_size": check_group_size(row[cols["group_size"]]) if "group_size" in cols else None}


def tokens_from_flops(flops: Any, n_params: Any) -> Any:
    """D = C / (6·N): training FLOPs to tokens (Kaplan et al. 2020, C ≈ 6ND)."""
    return flops / (6.0 * n_params)


def canonical_columns(frame: Any, mapping: Mapping[str, str] | None = None) -> Any:
    """A pandas frame with its field columns renamed to the field names and D derived from C."""
    fields = column_map(frame.columns, mapping)
    taken = set(fields.values())
    fields.update({f: c for f, c in optional_map(c for c in frame.columns if str(c) not in taken).items()
                   if f not in fields})
    frame = frame.rename(columns={col: field for field, col in fields.items() if col != field})
    if "D" not in frame.columns and {"C", "N"} <= set(frame.columns):
        frame = frame.assign(D=tokens_from_flops(frame["C"], frame["N"]))
    return frame
