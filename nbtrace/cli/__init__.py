"""Root click group. Each command lives in its own thin module, imported only when used,
so ``nbtrace --help`` and ``nbtrace diff`` never pay for torch."""

from __future__ import annotations

import importlib
import os
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
    "isolate": "nbtrace.cli.isolate:command",
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


class PassThroughCommand(click.Command):
    """A command whose trailing arguments after ``--`` go to nanoBragg untouched. An option
    before ``--`` that the command does not know is a mistake in the nbtrace command line, so it
    is reported as such (not handed on for a producer to reject, nor silently ignored)."""

    def parse_args(self, ctx, args):
        given = list(args)  # the parser consumes ``args``
        try:
            rest = super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            raise click.UsageError(_unknown_option_message(ctx.info_name or self.name, exc, given), ctx) from None
        after = given[given.index("--") + 1:] if "--" in given else []
        passed = ctx.params.get("nb_args") or ()
        if len(passed) > len(after):  # stray words before `--` would reach the producers unannounced
            stray = " ".join(passed[: len(passed) - len(after)])
            raise click.UsageError(f"unexpected argument(s) {stray!r} before `--`; nanoBragg arguments go "
                                   f"after it: nbtrace {ctx.info_name} [OPTIONS] ... -- ARGS", ctx)
        return rest


def _unknown_option_message(name: str, exc: click.NoSuchOption, given: list[str]) -> str:
    before = given[: given.index("--")] if "--" in given else given
    # click names a short-option cluster by its first letter (-d for -detpixels): show the word typed
    word = next((a for a in before if a.split("=")[0] == exc.option_name), None) or \
        next((a for a in before if a.startswith(exc.option_name)), exc.option_name)
    word = word.split("=")[0]
    return (f"{name} has no option {word}; nanoBragg arguments go after `--`, "
            f"e.g. nbtrace {name} [OPTIONS] ... -- -{word.lstrip('-')} ...")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="nbtrace")
def cli():
    """Find where a port stops agreeing with its reference: trace diffs, captures, hunts."""


# click's completion protocol: `_NBTRACE_COMPLETE=bash_source nbtrace` prints the bash script
# (zsh_source, fish_source likewise); the shell then calls back with bash_complete etc.
COMPLETE_VAR = "_NBTRACE_COMPLETE"
SIM_INSTALL_HINT = "pip install 'nbtrace[sim]'"


def require_sim(what: str) -> None:
    """Raise UsageError (one line, exit 2) when the PyTorch simulator cannot run because torch is
    not installed (``pip install nbtrace`` brings the diff tools only). Does not import torch."""
    import importlib.util

    from nbtrace.errors import UsageError

    try:
        missing = importlib.util.find_spec("torch") is None
    except (ImportError, ValueError):  # a broken or blocked torch is as good as none
        missing = True
    if missing:
        raise UsageError(f"{what} needs the PyTorch simulator, and PyTorch is not installed",
                         hint=f"{SIM_INSTALL_HINT}, or give your own port with --port-cmd")


# ctx.meta key under which a command records its verdict (0 agree, 1 diverge) before printing
# the report, so a reader that closes the pipe early (``| head -1``) does not change the exit code.
VERDICT_KEY = "nbtrace.verdict"


def record_verdict(code: int) -> int:
    """Remember the command's exit code before it prints; returns ``code`` unchanged."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[VERDICT_KEY] = code
    return code


def check_output_file(path: str, option: str) -> None:
    """Fail fast, before any long work, when ``path`` cannot be written (its directory is missing
    or read-only, or it is a directory). Raises nbtrace.errors.UsageError."""
    from pathlib import Path

    from nbtrace.errors import UsageError

    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageError("is a directory, a file name is needed", f"{option} {path}", "give a file path, e.g. out.png")
    if not parent.is_dir():
        raise UsageError(f"directory {parent} does not exist", f"{option} {path}", "create it first or choose another path")
    existed = p.exists()
    try:  # a real probe: access() says yes to root even where the file system refuses (/proc)
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write this file ({exc.strerror or exc})", f"{option} {path}",
                         "choose a writable path") from None
    if not existed:
        p.unlink(missing_ok=True)


def ensure_output_dir(path: str, option: str):
    """Create the output directory now (before any long work) and prove a file can be written
    in it; returns its pathlib.Path. Raises nbtrace.errors.UsageError."""
    import tempfile
    from pathlib import Path

    from nbtrace.errors import UsageError

    d = Path(path)
    try:
        d.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=d).close()
    except FileExistsError:
        raise UsageError("exists and is not a directory", f"{option} {path}", "give a directory path") from None
    except OSError as exc:
        raise UsageError(f"cannot create or write this directory ({exc.strerror or exc})", f"{option} {path}",
                         "choose a writable directory") from None
    return d


def _say(line: str) -> None:
    try:
        click.echo(line, err=True)
    except OSError:  # stderr itself is a closed pipe: nothing left to tell
        pass


def _silence_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the interpreter's final flush of
    buffered output cannot raise again (it would print 'Exception ignored ...')."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _stdout_refuses(exc: OSError) -> bool:
    """True when an OSError that names no file came from stdout: data still buffered for it
    cannot be written, or it is a full device or file system (every nbtrace file write names
    its path, so an unnamed 'no space' is the output stream)."""
    import errno

    try:
        sys.stdout.flush()
    except OSError:
        return True
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return False
    try:
        return _fd_target(1) == "/dev/full" or os.fstatvfs(1).f_bavail == 0
    except OSError:
        return False


def _fd_target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"file descriptor {fd}"


def _invoke(args: list[str], seen: dict) -> int:
    """Parse and run one command. Unlike ``click.Command.main`` this does not turn EOFError into
    Abort (an EOFError from numpy on an empty file is not a Ctrl-D) nor a broken pipe into exit 1
    (which means "diverge"). ``seen`` receives the verdict a command recorded."""
    try:
        with cli.make_context("nbtrace", args) as ctx:
            ctx.meta[VERDICT_KEY] = 0
            seen.update(verdicts=ctx.meta)  # ctx.meta is shared with the subcommand's context
            rv = cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    return rv if isinstance(rv, int) else 0


def main(argv=None):
    """Console entry point: library errors become one line on stderr and exit code 2; only a
    genuine Ctrl-C is exit 130; a closed output pipe exits quietly with the verdict's code."""
    args = sys.argv[1:] if argv is None else list(argv)
    instruction = os.environ.get(COMPLETE_VAR)
    if instruction:  # the custom main below would bypass click's own completion hook
        from click.shell_completion import shell_complete

        sys.exit(shell_complete(cli, {}, "nbtrace", COMPLETE_VAR, instruction))
    seen: dict = {}
    code = None
    try:
        code = _invoke(args, seen)
        sys.stdout.flush()  # a closed pipe must surface here, not in the interpreter's exit flush
    except NbtraceError as exc:
        _say(f"nbtrace: error: {exc.one_line()}")
        sys.exit(2)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `nbtrace` or `nbtrace taps`: show the help
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message(), err=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        _say(f"nbtrace: error: this command needs PyTorch, which is not installed (hint: {SIM_INSTALL_HINT})")
        sys.exit(2)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _say("nbtrace: aborted")
        sys.exit(130)
    except click.UsageError as exc:
        where = f" ({exc.ctx.command_path})" if exc.ctx is not None else ""
        _say(f"nbtrace: error: {exc.format_message()}{where}; see --help")
        sys.exit(2)
    except click.ClickException as exc:
        _say(f"nbtrace: error: {exc.format_message()}")
        sys.exit(2)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(code if code is not None else int(seen.get("verdicts", {}).get(VERDICT_KEY, 0)))
    except OSError as exc:
        # a file-system refusal no command anticipated is still the user's path, not a bug
        if exc.filename is None and _stdout_refuses(exc):  # a full disk or device behind stdout
            target = _fd_target(1)
            _silence_stdout()
            _say(f"nbtrace: error: standard output ({target}): cannot write: {exc.strerror or exc} "
                 "(hint: free some space, or send the output elsewhere)")
            sys.exit(2)
        where = exc.filename if exc.filename is not None else "file system"
        _say(f"nbtrace: error: {where}: {exc.strerror or exc} (hint: check the path and its permissions)")
        sys.exit(2)
    sys.exit(code)

