"""The ``nbsim`` command's entry point, light on purpose.

``nbsim -h``, ``-V`` and ``--list-injections`` answer from torch-free modules (helptext,
injections) in a fraction of a second; only a simulation imports torch and the simulator.
Without torch (``pip install nbtrace`` brings the diff tools only) nbsim says in one line what
to install and exits 2.
"""

from __future__ import annotations

import sys

HELP_FLAGS = ("-h", "--help", "-help")
VERSION_FLAGS = ("-V", "--version")
INSTALL_HINT = "pip install 'nbtrace[sim]'"


def torch_missing_message(what: str) -> str | None:
    """One line saying how to get torch when it cannot be imported, else None (imports torch)."""
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "torch":
            raise
        return f"{what} needs PyTorch, which is not installed (hint: {INSTALL_HINT})"
    return None


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``nbsim`` / ``python -m nbtrace.sim``; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    from nbtrace.sim.helptext import PROG, USAGE

    if any(a in HELP_FLAGS for a in args):
        sys.stdout.write(USAGE)
        return 0
    if any(a in VERSION_FLAGS for a in args):
        from nbtrace.sim import __version__

        sys.stdout.write(f"{PROG} {__version__} (nbtrace PyTorch simulator)\n")
        return 0
    if "--list-injections" in args:
        from nbtrace.sim.injections import listing

        sys.stdout.write(listing())
        return 0
    missing = torch_missing_message(f"{PROG} (the PyTorch simulator)")
    if missing is not None:
        print(f"{PROG}: error: {missing}", file=sys.stderr)
        return 2
    from nbtrace.sim.cli import main as run_cli

    return run_cli(argv)


def console() -> None:
    sys.exit(main())
