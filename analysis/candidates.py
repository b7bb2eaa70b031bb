"""Candidate runs for `quest-lab suggest`, what each costs, and the sweep file of the chosen ones.

- Candidates: the points of a sweep YAML that the store does not hold yet (`from_sweep`), or a grid
  generated around the stored runs (`around_store`): their sizes plus the next two registered sizes,
  their token budgets plus 2× and 4× the largest, their precisions; every other setting the most
  common one of the stored runs' configs.
- Run cost (`COSTS`, extended with `@register_cost`): `flops` = training FLOPs
  (`quest_lab.sizes.training_flops`), `gpu-h` = tokens / the store's measured tokens/s for that
  size and precision (else that size, else the median FLOP rate of the stored runs) in hours.
- Budget: "<number>[unit]", the unit naming the cost model (`parse_budget`).
- Output: a sweep document with `base` = the chosen runs' shared settings and one `include` point per
  run, checked to expand to exactly the chosen run_ids, written atomically (`write_sweep`).
"""
from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from quest_lab.analysis.data import precision_label
from quest_lab.run import RunConfig
from quest_lab.sizes import MODEL_SIZES, training_flops
from quest_lab.sweep.grid import DONE_STATUSES, plan_sweep
from quest_lab.sweep.spec import Sweep, load_spec, parse_spec, safe_name

AXIS_KEYS = ("size", "w_bits", "a_bits", "quantizer", "tokens", "tokens_per_param")
EXTRA_SIZES = 2  # registered sizes above the largest stored one, for generated candidates
EXTRA_TOKENS = (2, 4)  # multiples of the largest stored token budget, for generated candidates
SWEEP_KEYS = ("resources", "max_concurrent", "retries")  # copied from a candidates YAML

CostFn = Callable[[list[RunConfig], pd.DataFrame], np.ndarray]
COSTS: dict[str, tuple[str, CostFn]] = {}  # name -> (unit, cost of each config given the stored runs)
UNIT_ALIASES = {"": "flops", "flop": "flops", "flops": "flops", "gpu-h": "gpu-h", "gpuh": "gpu-h",
                "gpu-hours": "gpu-h", "gpu-hour": "gpu-h", "h": "gpu-h"}


def register_cost(name: str, unit: str):
    def deco(fn: CostFn) -> CostFn:
        if name in COSTS:
            raise ValueError(f"cost model {name!r} registered twice")
        COSTS[name] = (unit, fn)
        return fn

    return deco


@register_cost("flops", "FLOPs")
def flops_cost(configs: list[RunConfig], runs: pd.DataFrame) -> np.ndarray:
    return np.array([training_flops(c.size, c.token_budget, c.seq_len) for c in configs], float)


@register_cost("gpu-h", "GPU-hours")
def gpu_hours_cost(configs: list[RunConfig], runs: pd.DataFrame) -> np.ndarray:
    """Hours at the store's measured throughput (of the hardware that trained those runs)."""
    speed = pd.to_numeric(runs["tokens_per_s"], errors="coerce") if "tokens_per_s" in runs else pd.Series(dtype=float)
    measured = runs[(speed > 0) & np.isfinite(speed) & runs["size"].isin(MODEL_SIZES)] if len(speed) else runs.iloc[:0]
    if measured.empty:
        raise ValueError("no stored run has a measured tokens/s to cost GPU-hours; give the budget in FLOPs (e.g. 1e18)")
    by_label = measured.groupby(["size", "label"])["tokens_per_s"].median().to_dict()
    by_size = measured.groupby("size")["tokens_per_s"].median().to_dict()
    flop_rate = float(np.median([training_flops(s, d) * t / d for s, d, t in
                                 zip(measured["size"], measured["D"], measured["tokens_per_s"])]))
    out = []
    for c in configs:
        rate = by_label.get((c.size, precision_label(c.quantizer, c.w_bits, c.a_bits)), by_size.get(c.size))
        seconds = c.token_budget / rate if rate else training_flops(c.size, c.token_budget, c.seq_len) / flop_rate
        out.append(seconds / 3600.0)
    return np.array(out)


@dataclass(frozen=True)
class Budget:
    amount: float
    cost: str  # a COSTS key

    @property
    def unit(self) -> str:
        return COSTS[self.cost][0]


def parse_budget(text: str) -> Budget:
    """'1e18', '1e18 flops', '2.5gpu-h' -> Budget; ValueError (one line) otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z-]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in UNIT_ALIASES:
        raise ValueError(f"budget {text!r} is not a number with an optional unit; units: flops (default), gpu-h "
                         "(e.g. 1e18 or 2.5gpu-h)")
    amount = float(m.group(1))
    if not (np.isfinite(amount) and amount > 0):
        raise ValueError(f"budget {text!r} must be a positive number")
    return Budget(amount, UNIT_ALIASES[unit])


# -- candidate pools --------------------------------------------------------------------------------
def frame(configs: list[RunConfig], run_ids: list[str], runs: pd.DataFrame, cost: str) -> pd.DataFrame:
    """One row per candidate: key (run_id), size, N, D, bits, quantizer, label, cost, config."""
    rows = [{"key": rid, "size": c.size, "N": float(c.n_params), "D": float(c.token_budget),
             "w_bits": float(c.w_bits), "a_bits": float(c.a_bits), "quantizer": c.quantizer,
             "label": precision_label(c.quantizer, c.w_bits, c.a_bits), "config": c}
            for c, rid in zip(configs, run_ids)]
    df = pd.DataFrame(rows, columns=["key", "size", "N", "D", "w_bits", "a_bits", "quantizer", "label", "config"])
    return df.assign(cost=COSTS[cost][1](configs, runs) if configs else np.zeros(0))


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
        if key in AXIS_KEYS or key not in ours[0]:
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
    precisions = sorted({(c["quantizer"], float(c["w_bits"]), float(c["a_bits"])) for c in ours})
    ident = default_data_identity()(template.get("corpus", "shakespeare"), template.get("tokenizer", "bpe"),
                                    template.get("vocab_size", 1024))
    out_cfg, out_ids = [], []
    for size in sizes:
        for tok in tokens:
            for q, w, a in precisions:
                try:
                    cfg = RunConfig.from_dict({**template, "size": size, "quantizer": q, "w_bits": w, "a_bits": a,
                                               "tokens": tok, "tokens_per_param": None})
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


def write_text(path: Path, text: str, force: bool = False) -> None:
    """Write atomically (temporary file in the same folder, then rename); refuse to overwrite unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_sweep(path: Path, doc: dict, header: str, force: bool = False) -> None:
    """The sweep document as YAML under a `# header` comment, written atomically."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    write_text(path, comment + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120,
                                              allow_unicode=True), force)


def sweep_name(path: Path) -> str:
    return safe_name(Path(path).stem) or "next"
