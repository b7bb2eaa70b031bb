"""quest-lab command line: one Typer app merging the sub-apps of `quest_lab.commands`.

    quest-lab train | sizes | quantizers                   (quest_lab.commands.train)
    quest-lab sweep | runs | export | import | db          (quest_lab.commands.sweep, .results, .db)
    quest-lab fit | fits | report                          (quest_lab.commands.analysis, .fits, .report)
    quest-lab suggest                                      (quest_lab.commands.suggest)
"""
from __future__ import annotations

import logging

import typer

from quest_lab.commands import OneLineErrors, analysis, fits, new_app, report, suggest, sweep, train

app = new_app(
    cls=OneLineErrors,
    name="quest-lab",
    help="Precision scaling laws: sweep quantized training runs, fit laws, report Pareto frontiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class WarningFormatter(logging.Formatter):
    """`warning: message`, like the CLI's own warnings (`quest_lab.commands.warn`); with -v, debug and
    info lines also name their logger."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno < logging.WARNING:
            return f"{record.levelname.lower()} {record.name}: {text}"
        return f"{record.levelname.lower()}: {text}"


def _version(value: bool) -> None:
    if value:
        from quest_lab.version import version_text

        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(False, "--version", help="Print quest-lab's version (and git commit) and exit.",
                                 callback=_version, is_eager=True),
) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(WarningFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])


app.add_typer(train.app)
app.add_typer(sweep.app)
app.add_typer(analysis.app)
app.add_typer(fits.app)
app.add_typer(report.app)
app.add_typer(suggest.app)

if __name__ == "__main__":
    app()
