"""quest-lab fit: turn stored runs into a fitted law (the report is `quest_lab.commands.report`).

    quest-lab fit --law quest [--store URL | --csv FILE] [--where "w_bits>=2"] [--bootstrap N] [--json PATH]
                  [--budget train_flops=1e18 --memory-budget 8e9 …] [--mode joint|staged]
                  [--huber-delta 1e-4] [--law-option effD_max=2]

`--csv FILE` takes columns N, D (or C = training FLOPs, then D = C/(6N)), loss and optionally
w_bits, a_bits, quantizer (default 16, 16, "bf16"); Epoch AI's Chinchilla extraction is
recognised by its column names ("Model Size", "Training FLOP", "loss").
"""
from __future__ import annotations

import json
import logging
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from quest_lab.analysis.cost import COST_MODELS, DEFAULT_RATES
from quest_lab.analysis.law_base import InsufficientDataError, load_laws
from quest_lab.analysis.settings import HUBER_DELTA, METHODS, MODES
from quest_lab.version import code_identity
from quest_lab.commands import DEFAULT_STORE, StoreOpt, bad_input, console, fail, new_app, open_store, say, warn
from quest_lab.safe_text import display_url, json_safe, scrub

if TYPE_CHECKING:
    from quest_lab.analysis.fit import FitConfig, FitResult

log = logging.getLogger(__name__)
app = new_app()

LawName = Enum("LawName", {name: name for name in sorted(load_laws())}, type=str)  # type: ignore[misc]
Method = Enum("Method", {m: m for m in METHODS}, type=str)  # type: ignore[misc]
Mode = Enum("Mode", {m: m for m in MODES}, type=str)  # type: ignore[misc]

CsvOpt = Annotated[Optional[Path], typer.Option("--csv", help="Fit runs from a CSV (N, D or C, loss[, w_bits, a_bits, quantizer]) instead of the store.")]
WhereOpt = Annotated[Optional[str], typer.Option("--where", help="Row filter: comparisons of columns with numbers or 'strings', and/or/not, in [...], e.g. \"w_bits >= 2 and N > 1e6\".")]
SweepOpt = Annotated[Optional[str], typer.Option("--sweep", help="Only runs of this sweep (store only).")]
DropOpt = Annotated[int, typer.Option("--drop-highest", min=0, help="Drop the K highest-loss runs (Epoch AI dropped 5 Chinchilla points).")]


def _sqlite_missing(url: str) -> str | None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():
            return str(path)
    return None


def load_runs(store: str | None, csv: Path | None, where: str | None, sweep: str | None, drop_highest: int = 0):
    """The run table for fitting/reporting; any problem → `fail` (exit 2)."""
    from quest_lab.analysis import data

    if store and csv:
        fail("give either --store or --csv, not both")
    try:
        if csv is not None:
            df = data.load_csv(csv)
        else:
            url = store or DEFAULT_STORE
            missing = _sqlite_missing(url)
            if missing:
                fail(f"no results database at {missing}; run `quest-lab sweep SPEC.yaml` first or pass --csv FILE")
            with bad_input():  # an unreachable or unreadable store is one line, exit 2
                df = data.load_store(url, sweep=sweep)
        df = data.drop_highest_loss(df, drop_highest)
        df = data.apply_where(df, where)
    except InsufficientDataError as exc:
        fail(str(exc))
    if df.empty:
        fail("no completed runs to fit" + (f" after --where {where!r}" if where else "") +
             (f" in sweep {sweep!r}" if sweep else ""))
    return df


def parse_budgets(budget: list[str], memory_budget: list[float], compute_budget: list[float]) -> tuple[tuple[str, float], ...]:
    """`--budget COST=VALUE` (any cost model), `--memory-budget` (memory), `--compute-budget` (train_flops)."""
    out = [("memory", float(v)) for v in memory_budget] + [("train_flops", float(v)) for v in compute_budget]
    out += [_name_number(item, f"--budget {item!r} must be COST=VALUE, e.g. train_flops=1e18; cost models: "
                               f"{', '.join(COST_MODELS)}") for item in budget]
    return tuple(out)


def _name_number(item: str, message: str) -> tuple[str, float]:
    """`NAME=NUMBER` → (NAME, NUMBER); anything else is `fail(message)` (exit 2)."""
    name, sep, value = item.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or not name.strip() or number is None:
        fail(message)
    return name.strip(), number


def parse_rates(text: str | None) -> tuple[tuple[float, float], ...]:
    """`--hw-rates "4=0.25,8=0.5,16=1"` → ((4, 0.25), (8, 0.5), (16, 1))."""
    if text is None:
        return DEFAULT_RATES
    pairs = []
    for item in text.split(","):
        bits, _, rate = item.partition("=")
        try:
            pairs.append((float(bits), float(rate)))
        except ValueError:  # also a missing "=": float("")
            fail(f"--hw-rates {text!r} must be BITS=RELATIVE_COST pairs, e.g. \"4=0.25,8=0.5,16=1\"")
    return tuple(pairs)


def parse_law_options(items: list[str]) -> tuple[tuple[str, float], ...]:
    """`--law-option effD_max=1.05` → (("effD_max", 1.05),); the law checks names and values."""
    return tuple(_name_number(item, f"--law-option {item!r} must be NAME=NUMBER, e.g. effD_max=1.05") for item in items)


def run_fit(df, config: FitConfig) -> FitResult:
    from quest_lab.analysis.fit import fit_frame  # scipy and pandas: only when fitting

    try:
        return fit_frame(df, config)
    except ValueError as exc:  # InsufficientDataError included
        fail(str(exc))


def _fmt(x: float) -> str:
    return f"{x:.4g}" if x == x else "—"


def print_fit(result: FitResult) -> None:
    say(f"{result.law} law: {result.formula}")  # its own line: a table title would wrap mid-term
    table = Table()
    table.add_column("param")
    table.add_column("value", justify="right")
    table.add_column(f"{result.config.ci:.0%} CI" if result.ci else "CI", justify="right")
    for name, value in result.params.items():
        lo, hi = result.ci.get(name, (float("nan"), float("nan")))
        table.add_row(escape(name), _fmt(value), f"[{_fmt(lo)}, {_fmt(hi)}]" if result.ci else "—")
    console.print(table)
    console.print(f"runs {result.n_runs}  objective {result.objective:.6g}  R² {result.r2:.4f}  "
                  f"bootstrap {result.config.bootstrap}  mode {result.config.mode}  Huber δ {result.config.huber_delta:g}  "
                  f"({result.elapsed_s:.1f} s)")
    if result.config.law_options:
        say("law options: " + ", ".join(f"{k}={v:g}" for k, v in result.config.law_options))
    if result.holdout:
        h = result.holdout
        if "mean_abs_rel_error" in h:
            console.print(f"hold-out largest N = {h['N']:.3g} ({h['n_runs']} runs): mean |rel err| "
                          f"{h['mean_abs_rel_error']:.2%}, max {h['max_abs_rel_error']:.2%}")
        else:
            console.print(f"hold-out largest N: {h.get('note')}")
    for w in result.warnings:
        warn(w)
    print_answers(result)


def _answer_line(ans: dict[str, Any]) -> str:
    share = (ans.get("bootstrap") or {}).get("share", {})
    sure = f", chosen by {share.get(ans['best'], 0):.0%} of bootstrap fits" if share else ""
    where = ("data-rich limit" if ans.get("data_rich_limit")
             else f"N* {ans['N']:.3g}, D* {ans['D']:.3g}" if ans.get("D") else f"N* {ans['N']:.3g}")
    flag = f" [extrapolated: {'; '.join(ans['reasons'])}]" if ans.get("extrapolated") else ""
    return (f"{ans['cost_model']} budget {ans['budget']:.3g} {ans['unit']}: best {ans['best']} "
            f"(loss {ans['loss']:.4g}, {where}{sure}){flag}")


def print_answers(result: FitResult) -> None:
    """The verdict and one line per answer (cost model, budget, best precision, how sure)."""
    if result.evidence:
        ev = result.evidence
        console.print(escape(f"verdict: answers {ev['verdict']}, because " + "; ".join(ev["because"])))
        if ev.get("scale_note"):
            console.print(escape(ev["scale_note"]))
    for block in (result.answers or {}).values():
        for ans in block["answers"]:
            console.print(escape(_answer_line(ans)))


def save_fit(url: str, result: FitResult, payload: dict[str, Any], sweep: str | None) -> int | None:
    try:
        from quest_lab.store import Store

        return Store(url).save_fit(result.law, payload, sweep=sweep)
    except Exception as exc:  # the fit is still printed / written as JSON
        warn(f"fit not stored in {display_url(url)}: "
             f"{scrub(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__}")
        return None


@app.command("fit")
def fit_cmd(
    law: Annotated[LawName, typer.Option("--law", help="Scaling law to fit.")] = LawName("quest"),  # type: ignore[arg-type]
    store: StoreOpt = None,
    csv: CsvOpt = None,
    where: WhereOpt = None,
    sweep: SweepOpt = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the CIs (0 = none).")] = 200,
    ci: Annotated[float, typer.Option("--ci", help="CI level (0.8 = Epoch AI's 80% intervals).")] = 0.8,
    method: Annotated[Method, typer.Option("--method", help="grid: L-BFGS from the full start grid; varpro: NNLS over exponents, then L-BFGS.")] = Method("grid"),  # type: ignore[arg-type]
    mode: Annotated[Optional[Mode], typer.Option("--mode", help="joint: global search over all parameters; staged: 16-bit base first, then precision terms (biased when the 16-bit runs lie on one tokens-per-parameter line). Default: the law's (joint; quartet, qat: staged, their authors' procedure).")] = None,  # type: ignore[valid-type]
    holdout_largest: Annotated[bool, typer.Option("--holdout-largest", help="Refit without the largest N; report the extrapolation error on it.")] = False,
    drop_highest: DropOpt = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for the bootstrap.")] = min(2, os.cpu_count() or 1),
    budget: Annotated[Optional[list[str]], typer.Option("--budget", metavar="COST=VALUE", help="COST=VALUE (repeatable): answer the best precision at this budget of a cost model (memory, bops, train_flops). Default: the geometric middle of the observed range of each.")] = None,
    memory_budget: Annotated[Optional[list[float]], typer.Option("--memory-budget", metavar="BITS", help="Bits of weights (repeatable); same as --budget memory=BITS.")] = None,
    compute_budget: Annotated[Optional[list[float]], typer.Option("--compute-budget", metavar="FLOPS", help="BF16-equivalent training FLOPs (repeatable); same as --budget train_flops=FLOPS.")] = None,
    hw_rates: Annotated[Optional[str], typer.Option("--hw-rates", help='train_flops rate table BITS=RELATIVE_COST, e.g. "4=0.25,8=0.5,16=1" (the default): a w-bit matmul runs on the narrowest width >= w.')] = None,
    huber_delta: Annotated[float, typer.Option("--huber-delta", help="δ of the Huber loss on log residuals (the Quartet authors use 1e-4).")] = HUBER_DELTA,
    law_option: Annotated[Optional[list[str]], typer.Option("--law-option", metavar="NAME=VALUE", help="NAME=VALUE (repeatable): an option of the law, e.g. quartet's effD_max=1.05 (bounds of its effs).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the fit as JSON here (never over the store's files, nor over an existing file without --force).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --json file.")] = False,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Store the fit (default: yes when reading the store or --store is given).")] = True,
) -> None:
    """Fit a scaling law to completed runs.

    Prints the parameters with bootstrap CIs, the verdict and the derived answers, and stores the fit.
    """
    budgets = parse_budgets(budget or [], memory_budget or [], compute_budget or [])
    try:
        from quest_lab.analysis.fit import FitConfig

        config = FitConfig(law=law.value, method=method.value, mode=mode.value if mode else None, bootstrap=bootstrap,
                           ci=ci, seed=seed, workers=workers, holdout_largest=holdout_largest, budgets=budgets,
                           hw_rates=parse_rates(hw_rates), huber_delta=huber_delta,
                           law_options=parse_law_options(law_option or []))
    except ValueError as exc:
        fail(str(exc))
    protected = open_store(store).files() if json_path is not None and (csv is None or store is not None) else []
    if json_path is not None:
        from quest_lab.outputs import check_file_target

        with bad_input():  # before any work: a fit that cannot be written is not computed
            check_file_target(json_path, force=force, protected=protected)
    df = load_runs(store, csv, where, sweep, drop_highest)
    result = run_fit(df, config)
    payload = result.to_payload()
    payload.update({"source": str(csv) if csv else display_url(store or DEFAULT_STORE), "where": where,
                    "sweep": sweep, "drop_highest": drop_highest, "code": code_identity()})
    print_fit(result)
    if save and (csv is None or store is not None):
        fit_id = save_fit(store or DEFAULT_STORE, result, payload, sweep)
        if fit_id is not None:
            say(f"stored fit #{fit_id} in {display_url(store or DEFAULT_STORE)}")
    if json_path is not None:
        from quest_lab.outputs import write_file

        text = json.dumps(json_safe(payload), indent=2, allow_nan=False, default=float) + "\n"
        with bad_input():
            write_file(json_path, lambda tmp: tmp.write_text(text), force=force, protected=protected)
        say(f"wrote {json_path}")
