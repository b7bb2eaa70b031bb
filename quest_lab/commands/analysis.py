"""quest-lab fit | report: turn stored runs into fitted laws and a self-contained HTML report.

    quest-lab fit --law quest [--store URL | --csv FILE] [--where "w_bits>=2"] [--bootstrap N] [--json PATH]
                  [--budget train_flops=1e18 --memory-budget 8e9 …] [--mode joint|staged]
                  [--huber-delta 1e-4] [--law-option effD_max=2]
    quest-lab report [--out reports/NAME/] [--law quest] [--suggestion next.json] [--open]

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
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from quest_lab.analysis.cost import COST_MODELS, DEFAULT_RATES
from quest_lab.analysis.fit import METHODS, MODES, FitConfig, FitResult, fit_frame
from quest_lab.analysis.law_base import InsufficientDataError, load_laws
from quest_lab.analysis.optimize import HUBER_DELTA
from quest_lab.commands import bad_input, console, err_console, fail, say
from quest_lab.safe_text import display_url, json_safe, scrub

log = logging.getLogger(__name__)
app = typer.Typer()


DEFAULT_STORE = "sqlite:///results.db"

LawName = Enum("LawName", {name: name for name in sorted(load_laws())}, type=str)  # type: ignore[misc]
Method = Enum("Method", {m: m for m in METHODS}, type=str)  # type: ignore[misc]
Mode = Enum("Mode", {m: m for m in MODES}, type=str)  # type: ignore[misc]

StoreOpt = Annotated[Optional[str], typer.Option("--store", help=f"SQLAlchemy URL of the results store (default: {DEFAULT_STORE}).")]
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
    for item in budget:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None:
            fail(f"--budget {item!r} must be COST=VALUE, e.g. train_flops=1e18; cost models: {', '.join(COST_MODELS)}")
        out.append((name.strip(), number))
    return tuple(out)


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
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not name.strip() or number is None:
            fail(f"--law-option {item!r} must be NAME=NUMBER, e.g. effD_max=1.05")
        out.append((name.strip(), number))
    return tuple(out)


def run_fit(df, config: FitConfig) -> FitResult:
    try:
        return fit_frame(df, config)
    except ValueError as exc:  # InsufficientDataError included
        fail(str(exc))


def _fmt(x: float) -> str:
    return f"{x:.4g}" if x == x else "—"


def print_fit(result: FitResult) -> None:
    table = Table(title=f"{result.law} law: {result.formula}", title_justify="left")
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
        err_console.print(f"[yellow]warning:[/] {escape(w)}", markup=True)
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
        err_console.print(f"[yellow]warning:[/] fit not stored in {escape(display_url(url))}: "
                          f"{escape(scrub(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__)}", markup=True)
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
    budget: Annotated[Optional[list[str]], typer.Option("--budget", help="COST=VALUE (repeatable): answer the best precision at this budget of a cost model (memory, bops, train_flops). Default: the geometric middle of the observed range of each.")] = None,
    memory_budget: Annotated[Optional[list[float]], typer.Option("--memory-budget", help="Bits of weights (repeatable); same as --budget memory=BITS.")] = None,
    compute_budget: Annotated[Optional[list[float]], typer.Option("--compute-budget", help="BF16-equivalent training FLOPs (repeatable); same as --budget train_flops=FLOPS.")] = None,
    hw_rates: Annotated[Optional[str], typer.Option("--hw-rates", help='train_flops rate table BITS=RELATIVE_COST, e.g. "4=0.25,8=0.5,16=1" (the default): a w-bit matmul runs on the narrowest width >= w.')] = None,
    huber_delta: Annotated[float, typer.Option("--huber-delta", help="δ of the Huber loss on log residuals (the Quartet authors use 1e-4).")] = HUBER_DELTA,
    law_option: Annotated[Optional[list[str]], typer.Option("--law-option", help="NAME=VALUE (repeatable): an option of the law, e.g. quartet's effD_max=1.05 (bounds of its effs).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the fit as JSON here.")] = None,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Store the fit (default: yes when reading the store or --store is given).")] = True,
) -> None:
    """Fit a scaling law to completed runs; print params with bootstrap CIs and store the fit."""
    budgets = parse_budgets(budget or [], memory_budget or [], compute_budget or [])
    try:
        config = FitConfig(law=law.value, method=method.value, mode=mode.value if mode else None, bootstrap=bootstrap,
                           ci=ci, seed=seed, workers=workers, holdout_largest=holdout_largest, budgets=budgets,
                           hw_rates=parse_rates(hw_rates), huber_delta=huber_delta,
                           law_options=parse_law_options(law_option or []))
    except ValueError as exc:
        fail(str(exc))
    df = load_runs(store, csv, where, sweep, drop_highest)
    result = run_fit(df, config)
    payload = result.to_payload()
    payload.update({"source": str(csv) if csv else display_url(store or DEFAULT_STORE), "where": where,
                    "sweep": sweep, "drop_highest": drop_highest})
    print_fit(result)
    if save and (csv is None or store is not None):
        fit_id = save_fit(store or DEFAULT_STORE, result, payload, sweep)
        if fit_id is not None:
            say(f"stored fit #{fit_id} in {display_url(store or DEFAULT_STORE)}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(json_safe(payload), indent=2, allow_nan=False, default=float) + "\n")
        say(f"wrote {json_path}")


@app.command("report")
def report_cmd(
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: reports/<date-time>/).")] = None,
    law: Annotated[Optional[LawName], typer.Option("--law", help="Law to report (default: the latest stored fit).")] = None,
    store: StoreOpt = None,
    csv: CsvOpt = None,
    where: WhereOpt = None,
    sweep: SweepOpt = None,
    drop_highest: DropOpt = 0,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples when fitting on the fly.")] = 200,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the report in the browser.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the files of a non-empty --out folder.")] = False,
    suggestion: Annotated[Optional[Path], typer.Option("--suggestion", help="JSON of `quest-lab suggest --json`: "
                          "adds the 'What to run next' panel.")] = None,
) -> None:
    """Write a self-contained HTML report (plots inlined) plus PNGs from the runs and the latest fit."""
    from quest_lab.analysis.report import ReportInputs, default_out_dir, write_report
    from quest_lab.outputs import check_dir_target, publish_dir

    with bad_input():
        check_dir_target(out, force=force)  # before any work: never over a file or a full folder
    next_runs = _read_suggestion(suggestion) if suggestion is not None else None
    df = load_runs(store, csv, where, sweep, drop_highest)
    stored = None
    if csv is None or store is not None:
        stored = _latest_fit(store or DEFAULT_STORE, law.value if law else None)
    if stored is not None:
        try:
            result = FitResult.from_payload(stored)
        except (KeyError, ValueError) as exc:
            fail(f"the stored {stored.get('law', '?')} fit cannot be read ({exc}); run `quest-lab fit` again")
        origin = scrub(f"stored fit ({stored.get('source', display_url(store or DEFAULT_STORE))}, where={stored.get('where')!r})")
    else:
        name = law.value if law else ("quest" if (df.get("w_bits", 16) < 16).any() else "chinchilla")
        console.print(f"no stored fit found: fitting the {name} law on the fly (bootstrap {bootstrap})")
        result = run_fit(df, FitConfig(law=name, bootstrap=bootstrap))
        origin = "fitted on the fly by `quest-lab report`"
    out = out or default_out_dir()
    source = str(csv) if csv else display_url(store or DEFAULT_STORE)
    try:
        with bad_input():  # built beside --out, then moved in: never over a file, nor a non-empty folder unforced
            index = out / publish_dir(out, lambda tmp: write_report(ReportInputs(
                runs=df, fit=result, out_dir=tmp, origin=origin, source=source, where=where, sweep=sweep,
                suggestion=next_runs)).name,
                force=force)
    except (InsufficientDataError, ValueError) as exc:
        fail(str(exc))
    say(f"report: {index}")
    if open_browser:
        import webbrowser

        webbrowser.open(index.resolve().as_uri())


def _read_suggestion(path: Path) -> dict[str, Any]:
    """The payload of `quest-lab suggest --json`, checked to rebuild; any problem → exit 2."""
    from quest_lab.analysis.suggest import Suggestion

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        Suggestion.from_payload(payload)
    except FileNotFoundError:
        fail(f"--suggestion {path}: no such file (write one with `quest-lab suggest --json PATH`)")
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        fail(f"--suggestion {path} is not a `quest-lab suggest --json` file: {type(exc).__name__}: {exc}")
    return payload


def _latest_fit(url: str, law: str | None) -> dict[str, Any] | None:
    if _sqlite_missing(url):
        return None
    try:
        from quest_lab.store import Store

        got = Store(url).latest_fit(law)
    except Exception as exc:
        log.warning("cannot read stored fits from %s: %s", display_url(url), scrub(str(exc)))
        return None
    if got and isinstance(got.get("payload"), dict):  # tolerate a wrapper row
        got = {**got["payload"], **{k: v for k, v in got.items() if k not in ("payload",) and k not in got["payload"]}}
    return got or None
