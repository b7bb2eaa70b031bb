"""Candidate runs for `quest-lab suggest`, what each costs, and the sweep file of the chosen ones.

- Candidates: the points of a sweep YAML that the store does not hold yet (`from_sweep`), or a grid
  generated around the stored runs (`around_store`): their sizes plus the next two registered sizes,
  their token budgets plus 2× and 4× the largest, their precisions (quantizer, bits, group size); every
  other setting the most common one of the stored runs' configs.
- Run cost: a compute cost model of the registry (`analysis/cost.py`: `train_flops`, the default,
  BF16-equivalent training FLOPs at the hardware rates; `bops`), or `gpu-h` = tokens / the store's
  measured tokens/s for that size and precision (else that size, else train_flops at the median FLOP
  rate of the stored runs) in hours.
- Budget: "<number>[unit]", the unit naming the cost (`parse_budget`).
- Output: a sweep document with `base` = the chosen runs' shared settings and one `include` point per
  run, checked to expand to exactly the chosen run_ids, written atomically and never over an
  existing file unless forced (`write_sweep`, by `quest_lab.outputs.write_file`).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import yaml

from quest_lab.analysis.cost import DEFAULT_RATES, get_cost_model
from quest_lab.analysis.data import normalise, precision_label
from quest_lab.outputs import write_file
from quest_lab.run import RunConfig
from quest_lab.sizes import MODEL_SIZES, non_embedding_params
from quest_lab.sweep.grid import DONE_STATUSES, plan_sweep
from quest_lab.sweep.spec import Sweep, load_spec, parse_spec, safe_name

AXIS_KEYS = ("size", "w_bits", "a_bits", "quantizer", "tokens", "tokens_per_param")
EXTRA_SIZES = 2  # registered sizes above the largest stored one, for generated candidates
EXTRA_TOKENS = (2, 4)  # multiples of the largest stored token budget, for generated candidates
SWEEP_KEYS = ("resources", "max_concurrent", "retries")  # copied from a candidates YAML

# budget units -> run-cost name: a compute cost model of the registry (analysis/cost.py), or "gpu-h"
UNIT_ALIASES = {"": "train_flops", "flop": "train_flops", "flops": "train_flops", "train_flops": "train_flops",
                "bops": "bops", "gpu-h": "gpu-h", "gpuh": "gpu-h", "gpu-hours": "gpu-h", "gpu-hour": "gpu-h",
                "h": "gpu-h"}
GPU_HOURS = "gpu-h"


def _config_arrays(configs: list[RunConfig]) -> tuple[np.ndarray, ...]:
    return tuple(np.array(v, float) for v in zip(*[(c.n_params, c.token_budget, c.w_bits, c.a_bits)
                                                   for c in configs])) if configs else (np.zeros(0),) * 4


def model_cost(configs: list[RunConfig], name: str, rates=DEFAULT_RATES) -> np.ndarray:
    """Cost of each config under a compute cost model of the registry (N = non-embedding parameters,
    D = training tokens), e.g. train_flops: BF16-equivalent training FLOPs at the hardware `rates`."""
    N, D, w, a = _config_arrays(configs)
    return np.asarray(get_cost_model(name, rates=rates).cost(N, D, w, a), float)


def gpu_hours(configs: list[RunConfig], runs: pd.DataFrame, rates=DEFAULT_RATES) -> np.ndarray:
    """Hours at the store's measured throughput (of the hardware that trained those runs): tokens /
    the median tokens/s of that size and precision, else of that size, else train_flops at the median
    measured FLOP rate of the stored runs."""
    speed = pd.to_numeric(runs["tokens_per_s"], errors="coerce") if "tokens_per_s" in runs else pd.Series(dtype=float)
    measured = runs[(speed > 0) & np.isfinite(speed) & runs["size"].isin(MODEL_SIZES)] if len(speed) else runs.iloc[:0]
    if measured.empty:
        raise ValueError("no stored run has a measured tokens/s to cost GPU-hours; give the budget in FLOPs (e.g. 1e18)")
    flops = get_cost_model("train_flops", rates=rates)
    by_label = measured.groupby(["size", "label"])["tokens_per_s"].median().to_dict()
    by_size = measured.groupby("size")["tokens_per_s"].median().to_dict()
    sizes = measured["size"].map(non_embedding_params).to_numpy(float)
    D = measured["D"].to_numpy(float)
    flop_rate = float(np.median(flops.cost(sizes, D, measured["w_bits"], measured["a_bits"])
                                * measured["tokens_per_s"].to_numpy(float) / D))
    fallback = model_cost(configs, "train_flops", rates) / flop_rate
    out = []
    for c, slow in zip(configs, fallback):
        rate = by_label.get((c.size, precision_label(c.quantizer, c.w_bits, c.a_bits, c.group_size, c.g_bits)),
                            by_size.get(c.size))
        out.append((c.token_budget / rate if rate else slow) / 3600.0)
    return np.array(out)


@dataclass(frozen=True)
class Budget:
    amount: float
    cost: str  # a compute cost model of the registry (train_flops, bops) or "gpu-h"

    @property
    def unit(self) -> str:
        return "GPU-hours" if self.cost == GPU_HOURS else get_cost_model(self.cost).unit

    def costs(self, configs: list[RunConfig], runs: pd.DataFrame, rates=DEFAULT_RATES) -> np.ndarray:
        """Cost of each config in this budget's unit."""
        if self.cost == GPU_HOURS:
            return gpu_hours(configs, runs, rates)
        return model_cost(configs, self.cost, rates)


def parse_budget(text: str) -> Budget:
    """'1e18', '1e18 flops', '1e18 train_flops', '1e20 bops', '2.5gpu-h' -> Budget; ValueError (one line)
    otherwise.  A plain number or `flops` is train_flops of the cost registry (BF16-equivalent FLOPs)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z_-]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in UNIT_ALIASES:
        raise ValueError(f"budget {text!r} is not a number with an optional unit; units: flops (default: the "
                         "train_flops cost model, BF16-equivalent FLOPs), bops, gpu-h (e.g. 1e18 or 2.5gpu-h)")
    amount = float(m.group(1))
    if not (np.isfinite(amount) and amount > 0):
        raise ValueError(f"budget {text!r} must be a positive number")
    return Budget(amount, UNIT_ALIASES[unit])


# -- candidate pools --------------------------------------------------------------------------------
def frame(configs: list[RunConfig], run_ids: list[str], runs: pd.DataFrame, budget: Budget,
          rates=DEFAULT_RATES) -> pd.DataFrame:
    """One row per candidate: key (run_id), size, N, D, bits, quantizer, label, cost (in the budget's
    unit), config."""
    rows = [{"key": rid, "size": c.size, "N": float(c.n_params), "D": float(c.token_budget),
             "w_bits": float(c.w_bits), "a_bits": float(c.a_bits), "g_bits": float(c.g_bits),
             "group_size": np.nan if c.group_size is None else float(c.group_size), "quantizer": c.quantizer,
             "config": c} for c, rid in zip(configs, run_ids)]
    df = pd.DataFrame(rows, columns=["key", "size", "N", "D", "w_bits", "a_bits", "g_bits", "group_size",
                                     "quantizer", "config"])
    # label and G exactly as the fitted runs get them
    df = normalise(df.assign(loss=1.0), source="candidates").drop(columns=["loss"]) if rows else df.assign(label="", G=np.nan)
    return df.assign(cost=budget.costs(configs, runs, rates) if configs else np.zeros(0))


def from_sweep(sweep: Sweep | str | Path, statuses: Callable[[list[str]], dict[str, str]],
               ) -> tuple[list[RunConfig], list[str]]:
    """The sweep's points not done in the store (completed/diverged/failed); raises SpecError."""
    plan = plan_sweep(sweep if isinstance(sweep, Sweep) else load_spec(sweep), statuses)
    todo = [r for r in plan.runs if plan.existing.get(r.run_id) not in DONE_STATUSES + ("failed",)]
    return [r.config for r in todo], [r.run_id for r in todo]


def _most_common(values: list[Any]) -> Any:
    return Counter(map(repr, values)).most_common(1)[0][0]


def around_store(configs: list[dict[str, Any]], statuses: Callable[[list[str]], dict[str, str]],
                 ) -> tuple[list[RunConfig], list[str]]:
    """Sizes × token budgets × precisions around the stored runs (`configs`: their stored config
    JSON), minus what the store holds."""
    from quest_lab.sweep.grid import default_data_identity

    ours = [c for c in configs if c and "size" in c]
    if not ours:
        raise ValueError("the store's runs carry no training config (imported runs?); pass --candidates SWEEP.yaml")
    names = [f.name for f in fields(RunConfig)]
    template = {}
    for key in names:
        if key in AXIS_KEYS or key == "group_size" or key not in ours[0]:
            continue
        values = [c.get(key) for c in ours]
        pick = _most_common(values)
        template[key] = next(v for v in values if repr(v) == pick)
    order = list(MODEL_SIZES)
    stored = sorted({c["size"] for c in ours if c["size"] in MODEL_SIZES}, key=order.index)
    top = order.index(stored[-1])
    sizes = stored + [s for s in order[top + 1: top + 1 + EXTRA_SIZES]]
    tokens = sorted({int(RunConfig.from_dict({k: c[k] for k in names if k in c}).token_budget) for c in ours})
    tokens += [tokens[-1] * k for k in EXTRA_TOKENS]
    precisions = sorted({(c["quantizer"], float(c["w_bits"]), float(c["a_bits"]), c.get("group_size")) for c in ours},
                        key=repr)
    ident = default_data_identity()(template.get("corpus", "shakespeare"), template.get("tokenizer", "bpe"),
                                    template.get("vocab_size", 1024))
    out_cfg, out_ids = [], []
    for size in sizes:
        for tok in tokens:
            for q, w, a, g in precisions:
                try:
                    cfg = RunConfig.from_dict({**template, "size": size, "quantizer": q, "w_bits": w, "a_bits": a,
                                               "group_size": g, "tokens": tok, "tokens_per_param": None})
                except ValueError:
                    continue
                out_cfg.append(cfg)
                out_ids.append(cfg.run_id(ident))
    seen = statuses(out_ids)
    keep = [i for i, rid in enumerate(out_ids) if seen.get(rid) not in DONE_STATUSES + ("failed",)]
    return [out_cfg[i] for i in keep], [out_ids[i] for i in keep]


# -- the sweep file -----------------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
        return int(v)
    return v


def _point(d: dict[str, Any]) -> dict[str, Any]:
    """The axis settings of one run: size, bits, quantizer (quantized runs), tokens."""
    point: dict[str, Any] = {"size": d["size"], "bits": [_plain(float(d["w_bits"])), _plain(float(d["a_bits"]))]}
    if not (float(d["w_bits"]) >= 16 and float(d["a_bits"]) >= 16):
        point["quantizer"] = d["quantizer"]
    point["tokens"] = int(d["tokens"])
    return point


def sweep_document(name: str, configs: list[RunConfig], store: str, extra: dict[str, Any] | None = None) -> dict:
    """`base` = each other setting's most common value among the runs (explicit, so the file keeps its
    meaning if RunConfig's defaults change; null / empty values are left to the defaults) plus the
    first run's size, bits and tokens; one `include` point per run with its size, bits, (quantizer,)
    tokens and whatever else differs from the base.

    The base is a complete run (the first one) because a sweep without grid axes also runs its base
    (`grid.expand`: the product of no axes is one empty point); its include entry is the same run."""
    defaults = {f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
                for f in fields(RunConfig)}
    dicts = [{**c.to_dict(), "tokens": c.token_budget, "tokens_per_param": None} for c in configs]
    base: dict[str, Any] = {}
    for key in dicts[0]:
        if key in AXIS_KEYS:
            continue
        pick = _most_common([d[key] for d in dicts])
        value = next(d[key] for d in dicts if repr(d[key]) == pick)
        if value is not None and value != {}:
            base[key] = value
    first = _point(dicts[0])
    base = {**first, "quantizer": dicts[0]["quantizer"], **base}
    include = []
    for d in dicts:
        point = _point(d)
        for key, value in d.items():
            if key in AXIS_KEYS or key in point:
                continue
            if repr(value) != repr(base.get(key, defaults.get(key))):
                point[key] = value
        include.append(point)
    # values as RunConfig holds them: the run_id hashes 1.0 and 1 differently
    doc = {"name": name, "base": base, "include": include, "store": store}
    doc.update(extra or {})
    return doc


def check_document(doc: dict, run_ids: list[str], file: str) -> None:
    """The document must expand to exactly `run_ids` (in order); a mismatch is a bug, not bad input."""
    got = plan_sweep(parse_spec(doc, file), lambda ids: {}).runs
    if [r.run_id for r in got] != list(run_ids):
        raise RuntimeError(f"{file}: the written sweep expands to {len(got)} run(s) that differ from the "
                           f"{len(run_ids)} chosen (a quest-lab bug; please report it)")


def write_text(path: Path, text: str, force: bool = False, protected: Iterable[Path] = ()) -> None:
    """Write `text` atomically, never over an existing file unless `force` nor over the store's own
    files (`protected`): `quest_lab.outputs.write_file`, which raises OutputError (one line)."""
    write_file(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"), force=force, protected=protected)


def write_sweep(path: Path, doc: dict, header: str, force: bool = False, protected: Iterable[Path] = ()) -> None:
    """The sweep document as YAML under a `# header` comment, written atomically."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    write_text(path, comment + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120,
                                              allow_unicode=True), force, protected)


def sweep_name(path: Path) -> str:
    return safe_name(Path(path).stem) or "next"
