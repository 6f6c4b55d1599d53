"""One bad input, one row: a command line, the files it needs, the exit code and a piece of the
message it must print. :func:`check` runs the row and holds every answer to the project's rule:
a clear line on stderr, the right exit code, and never a Python traceback.

Placeholders in args and file texts: ``{tmp}`` the test's folder (also the cwd), ``{python}``
this interpreter. A file text starting with ``#!`` is made executable. A file value may be a
callable ``f(path)`` that writes the file itself (binary images, dumps).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # the nbtrace command line, without "nbtrace"
    code: int  # expected exit code (2 for bad input)
    message: str  # must appear in what the command printed (stderr, else stdout)
    files: dict[str, str | bytes | Callable[[Path], None]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    stdout: str | None = None  # a file stdout is sent to: the row then runs in a subprocess
    creates: tuple[str, ...] = ()  # files the command must leave behind
    timeout: float = 120.0

    def param(self):
        return pytest.param(self, id=self.id)


def _fill(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{python}", sys.executable)


def _write_files(case: Case, tmp: Path) -> None:
    for name, content in case.files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
            continue
        if isinstance(content, str):
            content = _fill(content, tmp).encode()
        path.write_bytes(content)
        if content.startswith(b"#!"):
            path.chmod(0o755)


def run(case: Case, tmp: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the row, run in ``tmp``."""
    _write_files(case, tmp)
    args = [_fill(a, tmp) for a in case.args]
    monkeypatch.chdir(tmp)
    for key, value in case.env.items():
        monkeypatch.setenv(key, _fill(value, tmp))
    if case.stdout is not None:
        with open(_fill(case.stdout, tmp), "w") as out:
            proc = subprocess.run([sys.executable, "-m", "nbtrace", *args], stdout=out, stderr=subprocess.PIPE,
                                  text=True, cwd=tmp, env=dict(os.environ), timeout=case.timeout)
        return proc.returncode, "", proc.stderr
    from nbtrace.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def check(case: Case, tmp: Path, monkeypatch, capsys) -> None:
    code, out, err = run(case, tmp, monkeypatch, capsys)
    said = err + out
    assert "Traceback" not in said, said
    assert code == case.code, f"exit {code}, expected {case.code}:\n{said}"
    assert case.message in said, f"{case.message!r} not in:\n{said}"
    if code == 2:
        errors = [ln for ln in err.splitlines() if ln.startswith("nbtrace: error:")]
        assert len(errors) == 1, err
        assert case.message in errors[0], errors[0]
    for name in case.creates:
        assert (tmp / _fill(name, tmp)).is_file(), f"{name} was not written"


def check_table_row(files: dict[str, bytes], argv: list[str], code: int, expected: str, tmp: Path, monkeypatch,
                    capsys) -> None:
    """The tables of test_parse.py and test_engine.py: ({name: bytes}, argv, exit code, message). Runs
    nbtrace's main() in ``tmp``; a refusal (exit 2) is one short line on stderr and nothing on stdout;
    a verdict's message is looked for in stdout, with runs of white space folded (the console wraps)."""
    import time

    from nbtrace.cli import main

    for name, data in files.items():
        (tmp / name).write_bytes(data)
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "400")
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    took = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert exc.value.code == code, (out, err)
    said = err if code == 2 else out
    assert " ".join(expected.split()) in " ".join(said.split()), said[:3000]
    if code == 2:
        assert out == "" and err.count("\n") == 1 and len(err) < 600, err[:2000]
    assert "Traceback" not in out + err
    assert took < 10, f"{argv} took {took:.1f} s"
