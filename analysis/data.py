"""Run tables for fitting: load from the store or a CSV, normalise columns, label precisions, validate.

CSV input (`load_csv`): columns `N`, `D`, `loss`, optionally `w_bits`, `a_bits`, `quantizer`, `g_bits`
(backward bits), `group_size` (defaults 16, 16, "bf16", 16, per row); `C` (training FLOPs) may replace
`D`, then D = C/(6N).  Epoch AI's Chinchilla extraction is recognised by its column names: `Model Size`
→ N, `Training FLOP` → C.  Labels come from `quest_lab.quant.specs.precision_label` (the one place they
are built and parsed).

`G` (added): the group size a law sees.  A per-row scale is one group spanning the whole row, so a
per-row run's G is its row length K, taken as the model width n_embd of a registered `size` (the K
of every quantized layer but the MLP down projection); unknown (NaN) for per-row rows of a CSV
without a known size.  Only the qat law uses it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from quest_lab.analysis.law_base import BASE_LABEL, Design, InsufficientDataError
from quest_lab.quant import specs

log = logging.getLogger(__name__)

DEFAULTS = {"w_bits": 16.0, "a_bits": 16.0, "quantizer": "bf16", "g_bits": 16.0}


def precision_label(quantizer: str, w_bits: float, a_bits: float, group_size=None, g_bits: float = 16.0) -> str:
    """The run's precision label (`quest_lab.quant.specs.precision_label`); NaN group size = per row."""
    group = None if group_size is None or not np.isfinite(group_size) else int(group_size)
    return specs.precision_label(quantizer, w_bits, a_bits, group, g_bits)


def label_bits(label: str) -> tuple[float, float]:
    """(w_bits, a_bits) of a precision label; (16, 16) for the base."""
    p = specs.parse_precision_label(label)
    return p.w_bits, p.a_bits


def row_length(size) -> float:
    """K of a per-row scale: the width n_embd of a registered model size; NaN when unknown."""
    from quest_lab.sizes import MODEL_SIZES

    cfg = MODEL_SIZES.get(size) if isinstance(size, str) else None
    return float(cfg.n_embd) if cfg is not None else float("nan")


def normalise(df: pd.DataFrame, source: str = "data") -> pd.DataFrame:
    """Field columns by `quest_lab.ingest` (aliases, D from C), precision defaults filled, `label` added."""
    from quest_lab.ingest import canonical_columns  # the column rules `quest-lab import` uses too

    df = canonical_columns(df)
    missing = [c for c in ("N", "D", "loss") if c not in df.columns]
    if missing:
        raise InsufficientDataError(
            f"{source} lacks column(s) {missing}; need N, D (or C = training FLOPs), loss "
            f"(found: {', '.join(map(str, df.columns))})")
    df = df.copy()
    for col, default in DEFAULTS.items():
        if col not in df.columns:
            df[col] = default
        else:
            df[col] = df[col].fillna(default)
    if "group_size" not in df.columns:
        df["group_size"] = np.nan
    for col in ("N", "D", "loss", "w_bits", "a_bits", "g_bits", "group_size"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["quantizer"] = df["quantizer"].astype(str)
    bad = df[~(np.isfinite(df["g_bits"]) & (df["g_bits"] > 0) & (df["g_bits"] <= 16))]
    if len(bad):
        raise InsufficientDataError(f"{len(bad)} run(s) have g_bits outside (0, 16] (rows {list(bad.index[:5])}); "
                                    "g_bits is the backward (gradient) bit-width, 16 = not quantized")
    group = df["group_size"]
    bad = df[group.notna() & ~((group >= 1) & (group == np.floor(group)))]
    if len(bad):
        raise InsufficientDataError(f"{len(bad)} run(s) have a group_size that is not a whole number >= 1 "
                                    f"(rows {list(bad.index[:5])}); empty = per row")
    df["label"] = [precision_label(q, w, a, g, b) for q, w, a, g, b in
                   zip(df["quantizer"], df["w_bits"], df["a_bits"], df["group_size"], df["g_bits"])]
    rows = df["size"].map(row_length) if "size" in df.columns else pd.Series(np.nan, index=df.index)
    df["G"] = group.where(group.notna(), rows).astype(float)
    return df.reset_index(drop=True)


def load_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InsufficientDataError(f"CSV file {str(path)!r} does not exist")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InsufficientDataError(f"cannot read {str(path)!r} as CSV: {exc}") from None
    return normalise(df, source=str(path))


def load_store(url: str, sweep: str | None = None) -> pd.DataFrame:
    from quest_lab.store import Store  # lazy: the store module is optional for CSV-only use

    store = Store(url)
    return normalise(store.runs_frame(sweep=sweep), source=store.display_url)


def drop_highest_loss(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Epoch AI's replication dropped the 5 highest-loss Chinchilla points."""
    return df.drop(index=df["loss"].nlargest(k).index).reset_index(drop=True) if k > 0 else df


def apply_where(df: pd.DataFrame, where: str | None) -> pd.DataFrame:
    """Keep the rows matching a `--where` filter (`quest_lab.filters`: comparisons of columns with
    constants, and/or/not, in [...]; nothing is evaluated as Python).  Raises InsufficientDataError."""
    if not where:
        return df
    from quest_lab.filters import FilterError, frame_schema, parse

    try:
        mask = parse(where, frame_schema(df)).mask(df)
    except FilterError as exc:
        raise InsufficientDataError(str(exc)) from None
    return df[mask].reset_index(drop=True)


def validate(df: pd.DataFrame, law_name: str, n_params: int, uses_precision: bool) -> pd.DataFrame:
    """Check the rows can determine the law; return the rows it will use.  Raises InsufficientDataError."""
    bad = df[~(np.isfinite(df["loss"]) & (df["loss"] > 0))]
    if len(bad):
        raise InsufficientDataError(
            f"{len(bad)} run(s) have NaN, infinite or non-positive loss (rows {list(bad.index[:5])}); "
            "drop them, e.g. --where 'loss > 0'")
    badnd = df[~((df["N"] > 0) & (df["D"] > 0) & np.isfinite(df["N"]) & np.isfinite(df["D"]))]
    if len(badnd):
        raise InsufficientDataError(f"{len(badnd)} run(s) have missing or non-positive N or D (rows {list(badnd.index[:5])})")
    badbits = df[~((df["w_bits"] > 0) & (df["a_bits"] > 0) & np.isfinite(df["w_bits"]) & np.isfinite(df["a_bits"]))]
    if len(badbits):
        raise InsufficientDataError(f"{len(badbits)} run(s) have non-numeric or non-positive w_bits/a_bits "
                                    f"(rows {list(badbits.index[:5])})")
    if not uses_precision:
        quant = df["label"] != BASE_LABEL
        if quant.any():
            log.warning("%s law ignores %d quantized run(s); fitting the %d 16-bit runs",
                        law_name, int(quant.sum()), int((~quant).sum()))
            df = df[~quant].reset_index(drop=True)
    base = df[df["label"] == BASE_LABEL]
    sizes, budgets = sorted(base["N"].unique()), sorted(base["D"].unique())
    if len(sizes) < 2 or len(budgets) < 2:
        raise InsufficientDataError(
            f"{law_name} law needs 16-bit runs at >= 2 model sizes and >= 2 token budgets; found sizes "
            f"{[f'{s:.3g}' for s in sizes]} and token budgets {[f'{b:.3g}' for b in budgets]}")
    if len(df) <= n_params:
        raise InsufficientDataError(
            f"{law_name} law has {n_params} parameters and needs more than {n_params} runs; found {len(df)}")
    return df


def design(df: pd.DataFrame, labels: tuple[str, ...] | None = None) -> Design:
    """Arrays for the fitter; `labels` fixes the order of precision labels (default: sorted)."""
    if labels is None:
        labels = tuple(sorted(set(df["label"]) - {BASE_LABEL}))
    index = {lab: i for i, lab in enumerate(labels)}
    idx = np.array([index.get(lab, -1) if lab != BASE_LABEL else -1 for lab in df["label"]], dtype=int)
    group = df["G"].to_numpy(float) if "G" in df.columns else np.full(len(df), np.nan)
    return Design(
        logN=np.log(df["N"].to_numpy(float)), logD=np.log(df["D"].to_numpy(float)),
        w_bits=df["w_bits"].to_numpy(float), a_bits=df["a_bits"].to_numpy(float),
        label_idx=idx, labels=tuple(labels), y=np.log(df["loss"].to_numpy(float)), group=group,
    )
