"""The options every command spells the same way: --spec FILE, --png DIR, --out DIR, --all."""

from __future__ import annotations

import click

SPEC_HELP = ("Tap spec: a YAML file, or a shipped spec's name (nanobragg, scaling, phi_loop); "
             "default: the shipped spec that fits.")
PNG_HELP = "Write this command's figures (PNG) into directory DIR."


def spec_option(f):
    return click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                        help=SPEC_HELP)(f)


def png_option(f):
    return click.option("--png", "png_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
                        help=PNG_HELP)(f)


def out_option(what: str):
    def deco(f):
        return click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
                            help=f"Write the report into directory DIR: {what}, the figures and a "
                                 "self-contained report.html.")(f)
    return deco


def all_option(f):
    return click.option("--all", "all_rows", is_flag=True,
                        help="List every tap (default: only the divergent, immaterial and missing ones).")(f)


def load_spec_arg(spec_path):
    """The TapSpec of --spec (a file or a shipped name), or None when not given."""
    if not spec_path:
        return None
    from nbtrace.engine.diff import resolve_spec

    return resolve_spec(spec_path)


def probe_dir(path, option: str):
    """Prove ``path`` can be made a writable directory before any long work, without leaving a
    new empty directory behind if the command then fails; the writer creates it again."""
    from pathlib import Path

    from nbtrace.cli import ensure_output_dir

    existed = Path(path).is_dir()
    d = ensure_output_dir(path, option)
    if not existed:
        try:
            d.rmdir()
        except OSError:
            pass
    return d

