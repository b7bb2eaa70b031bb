"""quest-lab report: the HTML report of the runs and one or more fitted laws.

    quest-lab report [--law quest --law chinchilla] [--out reports/NAME/] [--store URL | --csv FILE] [--open]

Without --law: the latest stored fit of each law (one section per law), or, when the store holds none
(or the runs come from a CSV), the quest law (chinchilla when every run is full precision) fitted on the
fly.  A --law without a stored fit is fitted on the fly; the console says which fit each section uses.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from quest_lab.commands import DEFAULT_STORE, StoreOpt, bad_input, fail, new_app, say, warn
from quest_lab.commands.analysis import (CsvOpt, DropOpt, LawName, SweepOpt, WhereOpt, _sqlite_missing, load_runs,
                                         run_fit)
from quest_lab.safe_text import display_url, scrub

log = logging.getLogger(__name__)
app = new_app()


@app.command("report")
def report_cmd(
    law: Annotated[Optional[list[LawName]], typer.Option(  # type: ignore[valid-type]
        "--law", metavar="LAW", help=f"Law to report: {', '.join(m.value for m in LawName)} (repeatable; one section "
                      "each). Default: the latest stored fit of every "
                      "law, or one law fitted on the fly when none is stored.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: reports/report-<date-time>/).")] = None,
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
    """Write the HTML report of the runs and fitted laws.

    One self-contained page (figures inlined, sortable run table, opens offline) plus the PNGs.
    """
    from quest_lab.analysis.report import ReportInputs, default_out_dir, write_report
    from quest_lab.outputs import check_dir_target, publish_dir

    with bad_input():
        check_dir_target(out, force=force)  # before any work: never over a file or a full folder
    next_runs = _read_suggestion(suggestion) if suggestion is not None else None
    names = list(dict.fromkeys(x.value for x in law or []))
    df = load_runs(store, csv, where, sweep, drop_highest)
    url = None if csv is not None and store is None else store or DEFAULT_STORE
    fits = _pick_fits(url, names, df, bootstrap, where, sweep)
    curves, curve_runs = _curves(url, sweep, where) if url else (None, None)
    out = out or default_out_dir()
    source = str(csv) if csv else display_url(url)
    try:
        with bad_input():  # built beside --out, then moved in: never over a file, nor a non-empty folder unforced
            index = out / publish_dir(out, lambda tmp: write_report(ReportInputs(
                runs=df, fits=tuple(fits), out_dir=tmp, source=source, where=where, sweep=sweep, curves=curves,
                curve_runs=curve_runs, suggestion=next_runs)).name, force=force)
    except ValueError as exc:  # InsufficientDataError included
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


def _default_law(df) -> str:
    return "quest" if (df.get("w_bits", 16) < 16).any() else "chinchilla"


def _pick_fits(url: str | None, names: list[str], df, bootstrap: int, where: str | None, sweep: str | None) -> list:
    """One LawFit per law: its latest stored fit, else fitted here; a console line for each."""
    from quest_lab.analysis.fit import FitConfig
    from quest_lab.analysis.report import LawFit

    stored = _stored_fits(url, names or None)
    if not names:
        names = [s.law for s in sorted(stored.values(), key=lambda s: s.id)] or [_default_law(df)]
    out = []
    for name in names:
        if name in stored:
            lf = _from_stored(stored[name], url)
            say(f"{name} law: {lf.origin.title}, {lf.fit.n_runs} runs fitted")
            if (lf.origin.where or None, lf.origin.sweep or None) != (where, sweep):
                warn(f"the stored {name} fit was made with --where {lf.origin.where!r}, --sweep {lf.origin.sweep!r}; "
                     f"the report shows the runs of --where {where!r}, --sweep {sweep!r} (run `quest-lab fit` again to match)")
        else:
            say(f"{name} law: no stored fit; fitting the {name} law on the fly (bootstrap {bootstrap})")
            lf = LawFit(run_fit(df, FitConfig(law=name, bootstrap=bootstrap)))
        out.append(lf)
    return out


def _stored_fits(url: str | None, laws: list[str] | None) -> dict[str, Any]:
    if url is None or _sqlite_missing(url):
        return {}
    from quest_lab.store import Store
    from quest_lab.store_fits import latest_per_law

    try:
        return latest_per_law(Store(url), laws)
    except Exception as exc:  # noqa: BLE001 - unreadable fits: report with fits made here, and say so
        warn(f"cannot read stored fits from {display_url(url)}: {scrub(str(exc)).splitlines()[0] if str(exc) else exc!r}")
        return {}


def _from_stored(fit, url: str):
    from quest_lab.analysis.fit import FitResult
    from quest_lab.analysis.report import FitOrigin, LawFit
    from quest_lab.analysis.report_tables import utc

    payload = fit.payload
    try:
        result = FitResult.from_payload(payload)
    except (KeyError, ValueError, TypeError) as exc:
        fail(f"stored {fit.law} fit #{fit.id} cannot be read ({exc}); run `quest-lab fit --law {fit.law}` again")
    origin = FitOrigin(stored=True, fit_id=fit.id, created_at=utc(fit.created_at),
                       source=scrub(str(payload.get("source") or display_url(url))), where=payload.get("where"),
                       sweep=payload.get("sweep", fit.sweep), code=dict(payload.get("code") or {}))
    return LawFit(result, origin)


def _curves(url: str, sweep: str | None, where: str | None):
    """Completed and diverged runs (D = the planned budget) and their stored curves; (None, None) when the
    store cannot give them."""
    if _sqlite_missing(url):
        return None, None
    from quest_lab.analysis import normalise
    from quest_lab.store import Store

    store = Store(url)
    with bad_input():
        frame = store.runs_frame(sweep=sweep, statuses=("completed", "diverged"), where=where)
        curves = store.curves(frame["run_id"].tolist())
        diverged = frame.index[frame["status"] == "diverged"]
        configs = store.run_configs(frame.loc[diverged, "run_id"].tolist())
    frame = normalise(frame)
    for i in diverged:  # a diverged run stopped early: group it with the budget it was planned for
        frame.loc[i, "D"] = _planned_tokens(configs.get(frame.at[i, "run_id"]), frame.at[i, "D"])
    return curves, frame


def _planned_tokens(config: dict | None, seen: float) -> float:
    from quest_lab.run import RunConfig

    try:
        return float(RunConfig.from_dict(config).token_budget) if config else seen
    except (ValueError, TypeError):  # imported runs, or a config this machine cannot resolve
        return seen
