"""quest-lab analysis commands."""
import typer

app = typer.Typer()
