"""quest-lab train commands."""
import typer

app = typer.Typer()
