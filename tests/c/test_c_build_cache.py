"""nbtrace.run.cbuild: builds once, reuses the cache, rebuilds exactly when a source changes, and fails
with one clear line when there is no compiler or the source does not compile."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from nbtrace.run import cbuild
from nbtrace.cli import main as cli_main
from nbtrace.errors import ProducerError

TINY = '#include <stdio.h>\nint main(void){puts("%s");return 0;}\n'


@pytest.fixture
def tiny_src(tmp_path, monkeypatch):
    """A throwaway source dir (a stand-in for simulator/c) and a private cache."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "nbref.c").write_text(TINY % "v1")
    monkeypatch.setenv("NBTRACE_CACHE", str(tmp_path / "cache"))
    return src


def _run(exe):
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.strip()


def test_builds_then_reuses_the_cached_binary(tiny_src, tmp_path):
    exe = cbuild.ensure_built(source=tiny_src)
    assert exe.parent == tmp_path / "cache" and _run(exe) == "v1"
    mtime = exe.stat().st_mtime_ns
    assert cbuild.ensure_built(source=tiny_src) == exe
    assert exe.stat().st_mtime_ns == mtime
    assert not [p for p in exe.parent.iterdir() if p.name.endswith(".tmp")]


def test_rebuilds_when_a_source_or_header_changes(tiny_src):
    first = cbuild.ensure_built(source=tiny_src)
    (tiny_src / "nbref.c").write_text(TINY % "v2")
    second = cbuild.ensure_built(source=tiny_src)
    assert second != first and _run(second) == "v2"
    (tiny_src / "extra.h").write_text("/* a header counts too */\n")
    assert cbuild.ensure_built(source=tiny_src) not in (first, second)


def test_force_rebuilds_in_place(tiny_src):
    exe = cbuild.ensure_built(source=tiny_src)
    os.utime(exe, ns=(0, 0))
    assert cbuild.ensure_built(source=tiny_src, force=True) == exe
    assert exe.stat().st_mtime_ns != 0


def test_openmp_choice_is_part_of_the_name(tiny_src):
    assert cbuild.ensure_built(source=tiny_src, openmp=False) != cbuild.ensure_built(source=tiny_src)


def test_no_compiler_is_one_clear_error(tiny_src, tmp_path, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ProducerError) as err:
        cbuild.ensure_built(source=tiny_src)
    line = err.value.one_line()
    assert line == ("no C compiler found (looked for $CC, cc, gcc) "
                    "(hint: install gcc, or set NB_C_BIN to a prebuilt binary)")


def test_compile_error_reports_the_first_error_line(tiny_src):
    (tiny_src / "nbref.c").write_text("int main(void) { return undeclared_thing; }\n")
    with pytest.raises(ProducerError) as err:
        cbuild.ensure_built(source=tiny_src)
    msg = err.value.one_line()
    assert "compiling the C reference failed" in msg and "undeclared_thing" in msg
    assert "\n" not in msg
    assert not list((tiny_src.parent / "cache").glob("nbref-*"))


def test_cc_environment_variable_is_used(tiny_src, tmp_path, monkeypatch):
    real = shutil.which("cc") or shutil.which("gcc")
    wrapper = tmp_path / "mycc"
    marker = tmp_path / "used"
    wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    _run(cbuild.ensure_built(source=tiny_src))
    assert marker.exists()


def test_build_c_command_prints_the_path(tiny_src, monkeypatch, capsys):
    monkeypatch.setattr(cbuild, "source_dir", lambda: tiny_src)
    with pytest.raises(SystemExit) as rc:
        cli_main(["build-c", "--no-openmp"])
    assert rc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == str(cbuild.ensure_built(source=tiny_src, openmp=False))


def test_shipped_sources_are_found():
    src = cbuild.source_dir()
    assert (src / "nbref.c").is_file() and (src / "nbtrace_tap.h").is_file()


def test_unwritable_cache_is_one_clear_error(tiny_src, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("NBTRACE_CACHE", str(blocker / "cache"))
    with pytest.raises(ProducerError) as err:
        cbuild.ensure_built(source=tiny_src)
    assert "cannot write the build cache" in err.value.one_line()
    assert "set NBTRACE_CACHE to a writable directory" in err.value.one_line()


def test_concurrent_first_builds_do_not_collide(tiny_src, tmp_path):
    import sys

    code = ("import sys, subprocess; from pathlib import Path; from nbtrace.run.cbuild import ensure_built; "
            "exe = ensure_built(source=Path(sys.argv[1])); "
            "print(exe, subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.strip())")
    env = dict(os.environ, NBTRACE_CACHE=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tiny_src)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    outs = {out.strip() for out, _ in results}
    assert len(outs) == 1 and outs.pop().endswith(" v1")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


def test_a_copy_of_the_real_sources_rebuilds_after_an_edit(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACE_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "c"
    shutil.copytree(cbuild.source_dir(), src, ignore=shutil.ignore_patterns("nbref", "nbref-notrace"))
    first = cbuild.ensure_built(source=src)
    with (src / "nbtrace_tap.h").open("a") as fh:
        fh.write("/* an edit to the header alone */\n")
    second = cbuild.ensure_built(source=src)
    assert first != second and first.exists() and second.exists()
    res = subprocess.run([str(second), "-cell", "100", "-default_F", "1", "-detpixels", "4", "-trace_pixel", "1", "1"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and "TRACE_C: I_pixel_final" in res.stdout


@pytest.mark.parametrize("cc,needle", [("/nonexistent/cc", "'/nonexistent/cc' is not an executable"),
                                       ('gcc "-O2', "cannot be split into words")])
def test_unrunnable_cc_is_an_error_naming_it_not_a_fallback(tiny_src, monkeypatch, capsys, cc, needle):
    monkeypatch.setenv("CC", cc)
    with pytest.raises(ProducerError) as err:
        cbuild.ensure_built(source=tiny_src)
    assert err.value.where == "$CC" and needle in err.value.one_line()
    monkeypatch.setattr(cbuild, "source_dir", lambda: tiny_src)
    with pytest.raises(SystemExit) as rc:
        cli_main(["build-c"])
    err_text = capsys.readouterr().err
    assert rc.value.code == 2 and "$CC" in err_text and err_text.count("\n") == 1


def test_a_new_build_prunes_the_cache_to_the_newest_keep(tiny_src, monkeypatch):
    monkeypatch.setattr(cbuild, "KEEP", 2)
    built = []
    for version in range(4):
        (tiny_src / "nbref.c").write_text(TINY % f"v{version}")
        built.append(cbuild.ensure_built(source=tiny_src))
        os.utime(built[-1], ns=(version * 10**9, version * 10**9))  # distinct build times
    left = sorted(p.name for p in built[0].parent.glob("nbref-*"))
    assert left == sorted(p.name for p in built[-2:])
    assert _run(built[-1]) == "v3"
