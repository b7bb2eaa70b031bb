"""quest-lab command line: one Typer app merging the sub-apps of `quest_lab.commands`.

    quest-lab train | sizes | quantizers      (quest_lab.commands.train)
    quest-lab sweep | runs | export | import  (quest_lab.commands.sweep)
    quest-lab fit | report                    (quest_lab.commands.analysis)
    quest-lab suggest                         (quest_lab.commands.suggest)
"""
from __future__ import annotations

import logging

import typer

from quest_lab.commands import analysis, suggest, sweep, train

app = typer.Typer(
    name="quest-lab",
    help="Precision scaling laws: sweep quantized training runs, fit laws, report Pareto frontiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


app.add_typer(train.app)
app.add_typer(sweep.app)
app.add_typer(analysis.app)
app.add_typer(suggest.app)

if __name__ == "__main__":
    app()
