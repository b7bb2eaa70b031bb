"""`quest-lab import`: external runs (published scaling data) from CSV into the store, fitted like our own.

Columns become fields by the shared rules of `quest_lab.ingest` (the same as `fit --csv`): `--map
"COLUMN=FIELD"`, then a column named like a field (any case), then known aliases ("Model Size" → N,
"Training FLOP" → C, ...); D = C/(6N) when only FLOPs are given; other columns are kept verbatim in the
stored row's config JSON.  Required: N, loss, and D or C.  w_bits / a_bits / quantizer must come from a
column or from `--default FIELD=VALUE` (e.g. `--default w_bits=16 --default a_bits=16 --default
quantizer=bf16` for full-precision data); if neither, the import is refused.  Bit-widths are checked like
a sweep's (`quest_lab.run.check_bits`).  A row's run_id is a hash of its full content + the source file
name, so importing the same file twice adds nothing.  Every problem is an ImportFileError naming the row.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from quest_lab.ingest import FIELDS as IMPORT_FIELDS
from quest_lab.ingest import PRECISION_FIELDS as DEFAULTABLE
from quest_lab.ingest import IngestError, column_map, tokens_from_flops
from quest_lab.run import check_bits
from quest_lab.sweep.spec import SWEEP_NAME, safe_name


class ImportFileError(ValueError):
    """The CSV or the mapping is unusable; the message names the columns / fields / rows."""


def parse_pairs(items: Sequence[str], option: str) -> dict[str, str]:
    """['a=b', ...] → {'a': 'b'} (split on the last '=' so column names may contain '=')."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.rpartition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImportFileError(f"{option} {item!r} must look like LEFT=RIGHT")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class ImportSpec:
    path: Path
    mapping: dict[str, str] = field(default_factory=dict)  # CSV column -> field
    defaults: dict[str, str] = field(default_factory=dict)  # field -> value
    sweep: str | None = None

    def __post_init__(self) -> None:
        bad = sorted({f for f in self.mapping.values() if f not in IMPORT_FIELDS})
        if bad:
            raise ImportFileError(f"--map names unknown field(s) {', '.join(bad)}; allowed: {', '.join(IMPORT_FIELDS)}")
        bad = sorted(f for f in self.defaults if f not in DEFAULTABLE)
        if bad:
            raise ImportFileError(f"--default names unknown field(s) {', '.join(bad)}; allowed: {', '.join(DEFAULTABLE)}")
        for f in ("w_bits", "a_bits"):
            if f in self.defaults:
                _bits(self.defaults[f], f"--default {f}", f)
        if self.sweep is not None and not re.fullmatch(SWEEP_NAME, self.sweep):
            raise ImportFileError(f"--sweep {self.sweep!r} is not a valid sweep name; use letters, digits, "
                                  "'_', '.', '-' (at most 200)")

    @property
    def source(self) -> str:
        return f"import:{self.path.name}"

    @property
    def sweep_name(self) -> str:
        return self.sweep or safe_name(self.path.stem)


def _number(value: Any, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ImportFileError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(x) or x <= 0:
        raise ImportFileError(f"{where}: {value!r} must be a positive finite number")
    return x


def _bits(value: Any, where: str, name: str) -> float:
    """A bit-width some quantizer accepts, as for sweeps (9 or 0.5 are refused)."""
    x = _number(value, where)
    try:
        check_bits(name, x)
    except ValueError as exc:
        raise ImportFileError(f"{where}: {exc}") from None
    return x


def read_import(spec: ImportSpec) -> list[dict[str, Any]]:
    """Rows of the CSV as store records (run_id, N, D, loss, w_bits, a_bits, quantizer, extra)."""
    if not spec.path.is_file():
        raise ImportFileError(f"{spec.path}: no such file")
    try:
        frame = pd.read_csv(spec.path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{spec.path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    columns = [str(c) for c in frame.columns]
    try:
        col_of = column_map(columns, spec.mapping)
    except IngestError as exc:
        raise ImportFileError(f"{spec.path}: {exc}") from None
    lacking = [f for f in ("N", "loss") if f not in col_of]
    if "D" not in col_of and "C" not in col_of:
        lacking.append("D (or C)")
    lacking += [f for f in DEFAULTABLE if f not in col_of and f not in spec.defaults]
    if lacking:
        raise ImportFileError(
            f"{spec.path}: no column for {', '.join(lacking)}; columns: {', '.join(columns)}. "
            "Map one with --map 'COLUMN=FIELD'; for w_bits/a_bits/quantizer give e.g. "
            "--default w_bits=16 --default a_bits=16 --default quantizer=bf16")

    records: list[dict[str, Any]] = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        where = f"{spec.path.name} row {i + 2}"  # 1-based, after the header line

        def get(fld: str) -> Any:
            return row[col_of[fld]] if fld in col_of else spec.defaults[fld]

        n = _number(get("N"), f"{where}, {col_of['N']}")
        if "D" in col_of:
            d = _number(get("D"), f"{where}, {col_of['D']}")
        else:
            d = tokens_from_flops(_number(get("C"), f"{where}, {col_of['C']}"), n)
        loss = _number(get("loss"), f"{where}, {col_of['loss']}")
        w = _bits(get("w_bits"), f"{where}, w_bits", "w_bits")
        a = _bits(get("a_bits"), f"{where}, a_bits", "a_bits")
        q = str(get("quantizer")).strip()
        if not q or q.lower() == "nan":
            raise ImportFileError(f"{where}: empty quantizer")
        extra = {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        blob = json.dumps({"row": extra, "source": spec.source, "N": n, "D": d, "loss": loss,
                           "w_bits": w, "a_bits": a, "quantizer": q}, sort_keys=True, default=str)
        records.append({"run_id": hashlib.sha256(blob.encode()).hexdigest()[:16], "N": n, "D": d,
                        "loss": loss, "w_bits": w, "a_bits": a, "quantizer": q, "extra": extra})
    if not records:
        raise ImportFileError(f"{spec.path}: no data rows")
    return records
