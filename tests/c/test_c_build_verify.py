"""A cached C reference binary is executed only when it is the file nbtrace built: its sha256
matches the one recorded at build time, it is a regular file of this user that nobody else can
write, in a folder nobody else can write. Anything else is rebuilt, never run (issue 11)."""

from __future__ import annotations

import os
import subprocess

import pytest

from nbtrace.run import cbuild

TINY = '#include <stdio.h>\nint main(void){puts("%s");return 0;}\n'


@pytest.fixture
def built(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "nbref.c").write_text(TINY % "genuine")
    monkeypatch.setenv("NBTRACE_CACHE", str(tmp_path / "cache"))
    exe = cbuild.ensure_built(source=src, openmp=False)
    return src, exe


def _say(exe) -> str:
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.strip()


def test_a_fresh_build_records_its_checksum_and_is_verified(built):
    _, exe = built
    assert cbuild.verified(exe) and _say(exe) == "genuine"
    assert cbuild.prune(exe.parent, keep=1) == []  # the checksum is not counted as a build
    assert oct(os.stat(exe.parent).st_mode & 0o777) == "0o700"


def _swap_for_a_script(exe):
    exe.unlink()
    exe.write_text("#!/bin/sh\necho planted\n")
    exe.chmod(0o755)


@pytest.mark.parametrize("tamper", [
    "replaced",  # another program under the cached name
    "checksum-gone",  # a binary nbtrace has no record of
    "group-writable",  # anyone in the group could have changed it
    "symlink",  # points elsewhere
])
def test_a_binary_that_fails_the_check_is_rebuilt_not_run(built, tamper, tmp_path):
    src, exe = built
    if tamper == "replaced":
        _swap_for_a_script(exe)
    elif tamper == "checksum-gone":
        cbuild.checksum_path(exe).unlink()
    elif tamper == "group-writable":
        exe.chmod(0o775)
    elif tamper == "symlink":
        planted = tmp_path / "planted"
        planted.write_text("#!/bin/sh\necho planted\n")
        planted.chmod(0o755)
        exe.unlink()
        exe.symlink_to(planted)
    assert not cbuild.verified(exe)
    again = cbuild.ensure_built(source=src, openmp=False)
    assert again == exe and cbuild.verified(again) and not again.is_symlink()
    assert _say(again) == "genuine"


def test_a_group_writable_cache_folder_is_closed_before_use(built):
    src, exe = built
    exe.parent.chmod(0o777)
    assert not cbuild.verified(exe)
    assert cbuild.ensure_built(source=src, openmp=False) == exe
    assert os.stat(exe.parent).st_mode & 0o022 == 0 and cbuild.verified(exe)


def test_prune_removes_the_checksum_with_its_binary(built, tmp_path):
    src, exe = built
    (src / "nbref.c").write_text(TINY % "second")
    newer = cbuild.ensure_built(source=src, openmp=False)
    removed = cbuild.prune(exe.parent, keep=1)
    assert removed == [exe] and not cbuild.checksum_path(exe).exists() and cbuild.verified(newer)
