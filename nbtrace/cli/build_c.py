"""`nbtrace build-c`: build the C reference simulator now and print the binary's path."""

from __future__ import annotations

import click


@click.command("build-c")
@click.option("--force", is_flag=True, help="Rebuild even if the cached binary is current.")
@click.option("--no-openmp", is_flag=True, help="Build without OpenMP (single-threaded).")
def command(force: bool, no_openmp: bool) -> int:
    """Build the C reference (simulator/c) into the per-user cache and print its path."""
    from nbtrace.run.cbuild import ensure_built

    click.echo(str(ensure_built(force=force, openmp=not no_openmp)))
    return 0
