"""The report's "What to run next" panel, from a `Suggestion` (or its JSON payload, `suggest --json`).

    html, pngs = what_to_run_next(suggestion)    # an <h2> section (figure inlined) + {"next_runs.png": bytes}

The report writes the PNGs next to index.html and pastes the HTML where the panel belongs.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from quest_lab.analysis.suggest import Suggestion

FIGURE = "next_runs.png"


def figure_png(s: Suggestion) -> bytes:
    """Left: expected CI width against cumulative cost, run by run.  Right: the chosen runs in (N, D),
    numbered as in the table, coloured by precision."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from quest_lab.analysis import plots

    t = s.table
    with matplotlib.rc_context(plots.STYLE):
        fig = Figure(figsize=(9.5, 3.8))
        ax, bx = fig.subplots(1, 2)
        cost = np.concatenate([[0.0], np.cumsum(t["cost"].to_numpy(float))]) if len(t) else np.zeros(1)
        widths = np.concatenate([[s.width_before], t["ci_width_after"].to_numpy(float)]) if len(t) else [s.width_before]
        ax.step(cost, widths, where="post", color="#e6550d")
        ax.plot(cost, widths, "o", color="#e6550d", ms=4)
        ax.set_xlabel("cumulative cost of the suggested runs")
        ax.set_ylabel(f"expected CI width ({s.unit})")
        ax.set_title("Expected uncertainty, run by run")
        ax.set_ylim(bottom=0)
        colors = plots.label_colors(list(t["label"]) if len(t) else [])
        steps: dict[tuple[float, float], list[str]] = {}  # runs at one (N, D) share one label "5,7,8"
        for r in t.itertuples(index=False):
            bx.scatter(r.N, r.D, color=colors.get(r.label, "#555"), s=40, label=r.label)
            steps.setdefault((float(r.N), float(r.D)), []).append(str(r.step))
        for (n, d), numbers in steps.items():
            bx.annotate(",".join(numbers), (n, d), textcoords="offset points", xytext=(4, 4), fontsize=8)
        plots.log_axis(bx, t["N"] if len(t) else [], "x")  # labelled even on ranges shorter than a decade
        plots.log_axis(bx, t["D"] if len(t) else [], "y")
        bx.set_xlabel("N (non-embedding parameters)")
        bx.set_ylabel("D (tokens)")
        bx.set_title("Suggested runs (numbered as in the table)")
        handles, labels = bx.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        if unique:
            bx.legend(unique.values(), unique.keys())
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    return buf.getvalue()


def _table(s: Suggestion) -> str:
    cols = ["step", "candidate", "size", "label", "N", "D", "cost", "ci_width_before", "ci_width_after", "why"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, (float, np.floating)) else html.escape(str(v))

    body = "".join("<tr>" + "".join(f"<td>{cell(row[c])}</td>" for c in cols) + "</tr>"
                   for row in s.table.to_dict(orient="records"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def what_to_run_next(suggestion: Suggestion | dict[str, Any]) -> tuple[str, dict[str, bytes]]:
    """The panel's HTML (an <h2 id='next'> section, figure inlined) and its PNGs by file name."""
    s = suggestion if isinstance(suggestion, Suggestion) else Suggestion.from_payload(suggestion)
    png = figure_png(s)
    shares = ""
    if s.shares_before:
        shares = ("<p>Best precision now, share of bootstrap replicates: "
                  + ", ".join(f"{html.escape(k)} {v:.0%}" for k, v in s.shares_before.items()) + ".</p>")
    notes = "".join(f"<li class='warn'>{html.escape(n)}</li>" for n in s.notes)
    text = (
        f"<h2 id='next'>What to run next</h2>"
        f"<p>Question <code>{html.escape(s.question)}</code>: {html.escape(s.target)} = {s.value:.4g}, "
        f"80% CI {s.ci_before[0]:.4g} to {s.ci_before[1]:.4g} (width {s.width_before:.3g}, {s.n_runs} runs, "
        f"{html.escape(s.law)} law). The {len(s.chosen)} run(s) below, costing {s.total_cost:.3g} of the budget "
        f"{s.budget:.3g}, are expected to narrow the width to {s.width_after:.3g} "
        f"({s.width_after / s.width_before:.0%} of now); chosen greedily by expected CI reduction per unit cost "
        f"(bootstrap-ensemble screen, then simulate-and-refit; {s.refits} refits in {s.elapsed_s:.0f} s).</p>"
        f"{shares}{_table(s)}<ul>{notes}</ul>"
        f"<figure><img alt='what to run next' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<figcaption>Expected CI width after each suggested run (left) and where the runs are (right).</figcaption>"
        f"</figure>")
    return text, {FIGURE: png}
