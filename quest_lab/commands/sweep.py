"""quest-lab sweep commands."""
import typer

app = typer.Typer()
