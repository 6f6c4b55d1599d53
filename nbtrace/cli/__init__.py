"""Root click group. Each command lives in its own thin module, imported only when used,
so ``nbtrace --help`` and ``nbtrace diff`` never pay for torch."""

from __future__ import annotations

import importlib
import sys

import click

from nbtrace import __version__
from nbtrace.errors import NbtraceError

# command name -> "module:attribute" (a click.Command)
COMMANDS: dict[str, str] = {
    "diff": "nbtrace.cli.diff:command",
    "taps": "nbtrace.cli.taps:command",
    "capture": "nbtrace.cli.capture:command",
    "build-c": "nbtrace.cli.build_c:command",
    "compare": "nbtrace.cli.compare:command",
    "hunt": "nbtrace.cli.hunt:command",
    "maps": "nbtrace.cli.maps:command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx, name):
        return self._load(name)

    @staticmethod
    def _load(name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbtrace")
def cli():
    """Find where a port stops agreeing with its reference: trace diffs, captures, hunts."""


def main(argv=None):
    """Console entry point: library errors become one line on stderr and exit code 2."""
    try:
        rv = cli.main(args=argv, prog_name="nbtrace", standalone_mode=False)
    except NbtraceError as exc:
        click.echo(f"nbtrace: error: {exc.one_line()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("nbtrace: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        where = f" ({exc.ctx.command_path})" if exc.ctx is not None else ""
        click.echo(f"nbtrace: error: {exc.format_message()}{where}; see --help", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"nbtrace: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
