"""The distribution ships every subpackage and the tap specs (a plain `pip install .` must work)."""

from __future__ import annotations

import pathlib
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _declared_packages() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def test_every_subpackage_is_declared():
    mapped = {"simulator": "nbtrace.sim"}  # folder -> the package it installs as (package-dir)
    found = set()
    for top in ("nbtrace", "simulator"):
        for p in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" in p.parts:
                continue
            parts = p.parent.relative_to(ROOT).parts
            found.add(".".join((mapped.get(parts[0], parts[0]),) + parts[1:]))
    assert found - _declared_packages() == set()


def test_simulator_folder_installs_as_nbtrace_sim():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["setuptools"]["package-dir"]["nbtrace.sim"] == "simulator"


def test_tap_specs_are_mapped_into_the_package():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["setuptools"]["package-dir"]["nbtrace.tap_specs"] == "tap_specs"
    assert "nbtrace.tap_specs" in _declared_packages()
    assert list((ROOT / "tap_specs").glob("*.yaml")), "no shipped spec found"


def test_wheel_contains_specs_and_c_sources(tmp_path):
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        # an isolated build, as `pip install .` does (the build backend comes from the index)
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("nbtrace-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "nbtrace/tap_specs/nanobragg.yaml" in names
    assert "nbtrace/sim/c/nbtrace_tap.h" in names
    assert any(n.startswith("nbtrace/sim/c/") and n.endswith(".c") for n in names)
    assert {"nbtrace/py.typed", "nbtrace/pytest_plugin.py", "nbtrace/sim/entry.py", "nbtrace/sim/helptext.py",
            "nbtrace-0.1.0.dist-info/licenses/LICENSE"} <= names
    entry_points = zipfile.ZipFile(wheel).read("nbtrace-0.1.0.dist-info/entry_points.txt").decode()
    assert "nbsim = nbtrace.sim.entry:main" in entry_points and "nbtrace = nbtrace.pytest_plugin" in entry_points


# ----------------------------------------------------------------------------- metadata (issue 12)


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_file_matches_the_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 nbtrace developers" in text
    project = _project()
    assert project["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in project["classifiers"]


def test_urls_classifiers_and_py_typed():
    project = _project()
    assert project["urls"] and all(u.startswith("https://") for u in project["urls"].values())
    assert "Typing :: Typed" in project["classifiers"] and "Framework :: Pytest" in project["classifiers"]
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in data["tool"]["setuptools"]["package-data"]["nbtrace"]
    assert (ROOT / "nbtrace" / "py.typed").is_file()


def test_torch_is_only_in_the_sim_extra():
    project = _project()
    assert not [d for d in project["dependencies"] if d.lower().startswith("torch")]
    (torch,) = [d for d in project["optional-dependencies"]["sim"] if d.startswith("torch")]
    assert torch == "torch>=2.2"  # a floor, no upper pin
    assert project["scripts"] == {"nbtrace": "nbtrace.cli:main", "nbsim": "nbtrace.sim.entry:main"}
    assert project["entry-points"]["pytest11"] == {"nbtrace": "nbtrace.pytest_plugin"}


# ----------------------------------------------------------------------------- without torch

FAKE = ROOT / "tests" / "data" / "hunt" / "fake_nanobragg.py"
WILD = ROOT / "tests" / "data" / "wild"
# runs a command as if torch were not installed (an import of it raises ModuleNotFoundError),
# then reports whether anything tried to import it anyway
NO_TORCH = """\
import sys
block = sys.argv[1] == "block"
if block:
    sys.modules["torch"] = None
mod, func = sys.argv[2].split(":")
main = getattr(__import__(mod, fromlist=[func]), func)
try:
    code = main(sys.argv[3:])
except SystemExit as exc:
    code = exc.code
print(f"\\nTORCH-LOADED={sys.modules.get('torch') is not None} CODE={code}")
"""


def _run(entry: str, *args, block: bool = True, cwd=None, env=None):
    import os
    import subprocess
    import sys

    full_env = dict(os.environ, NO_COLOR="1", COLUMNS="100", **(env or {}))
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, "block" if block else "free", entry, *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, env=full_env, timeout=120)
    tail = proc.stdout.rstrip().rsplit("\n", 1)[-1]
    assert tail.startswith("TORCH-LOADED="), proc.stderr
    loaded, code = tail.split()
    return loaded == "TORCH-LOADED=True", int(code.split("=")[1] or 0), proc.stdout, proc.stderr


def test_nbtrace_diff_never_imports_torch():
    case = ROOT / "tests" / "data" / "incidents" / "r07_mosflm_half_pixel"
    loaded, code, out, err = _run("nbtrace.cli:main", "diff", case / "reference.log", case / "port.log", block=False)
    assert (loaded, code) == (False, 1) and "pix0_vector_meters" in out, err


def test_diff_taps_compare_maps_work_without_torch(tmp_path):
    import subprocess
    import sys

    import numpy as np

    a, b = WILD / "at002_c_trace_pixel_64_79.log", WILD / "at002_py_trace_FIXED_pixel_64_79.log"
    loaded, code, out, err = _run("nbtrace.cli:main", "diff", a, a)
    assert (loaded, code, err) == (False, 0, "")
    loaded, code, out, err = _run("nbtrace.cli:main", "diff", a, b)
    assert not loaded and code in (0, 1) and "Traceback" not in err
    loaded, code, out, _ = _run("nbtrace.cli:main", "taps", "init", a)
    assert (loaded, code) == (False, 0) and "taps:" in out
    img = np.arange(64, dtype=np.float32).reshape(8, 8) + 1
    np.save(tmp_path / "a.npy", img)
    np.save(tmp_path / "b.npy", img)
    loaded, code, out, err = _run("nbtrace.cli:main", "compare", tmp_path / "a.npy", tmp_path / "b.npy")
    assert (loaded, code) == (False, 0) and "Traceback" not in err, err
    for side, extra in (("a", []), ("b", ["--inject", "svec-scale"])):
        subprocess.run([sys.executable, str(FAKE), "-detpixels", "16", "-trace_roi", "2", "9", "3", "8",
                        "-trace_dump", str(tmp_path / f"{side}.npz"), *extra], check=True, capture_output=True)
    loaded, code, out, err = _run("nbtrace.cli:main", "maps", tmp_path / "a.npz", tmp_path / "b.npz")
    assert (loaded, code) == (False, 1) and "scattering_vec_A_inv" in out and "Traceback" not in err, err


def _one_line_install_hint(err: str):
    assert err.count("\n") == 1 and "pip install 'nbtrace[sim]'" in err and "Traceback" not in err, err


def test_sim_commands_say_what_to_install_without_torch():
    loaded, code, _, err = _run("nbtrace.cli:main", "hunt")
    assert (loaded, code) == (False, 2)
    _one_line_install_hint(err)
    assert err.startswith("nbtrace: error: hunt needs the PyTorch simulator")
    loaded, code, _, err = _run("nbtrace.cli:main", "capture", "py", "--pixel", "1", "1", "--", "-N", "1")
    assert (loaded, code) == (False, 2) and err.startswith("nbtrace: error: capture py needs")
    _one_line_install_hint(err)
    loaded, code, _, err = _run("nbtrace.sim.entry:main", "-cell", "100", "100", "100", "90", "90", "90")
    assert (loaded, code) == (False, 2) and err.startswith("nbsim: error: nbsim (the PyTorch simulator) needs PyTorch")
    _one_line_install_hint(err)


def test_a_port_command_needs_no_torch(tmp_path):
    # --port-cmd replaces the simulator: capture py with it must not ask for torch
    loaded, code, _, err = _run("nbtrace.cli:main", "capture", "py", "--pixel", "1", "2", "-o", tmp_path / "p.trace",
                                "--port-cmd", f"python {FAKE} --port", "--", "-detpixels", "8")
    assert (loaded, code, err.count("pip install")) == (False, 0, 0), err
    assert "TRACE_PY: hkl_frac" in (tmp_path / "p.trace").read_text()


# ----------------------------------------------------------------------------- light commands

@pytest.mark.parametrize("argv, expected", [
    (["-h"], "usage: nbsim -cell"),
    (["--help"], "usage: nbsim -cell"),
    (["-V"], "nbsim 0.1.0"),
    (["--version"], "nbsim 0.1.0"),
    (["--list-injections"], "mosflm-half-pixel\t7\tMOSFLM +½ pixel dropped"),
])
def test_nbsim_help_version_and_listing_never_import_torch(argv, expected):
    loaded, code, out, err = _run("nbtrace.sim.entry:main", *argv, block=False)
    assert (loaded, code, err) == (False, 0, "") and expected in out


def test_every_injection_has_a_one_line_description():
    from nbtrace.sim.injections import INJECTIONS, listing

    lines = listing().splitlines()
    assert len(lines) == len(INJECTIONS) >= 18
    for line, inj in zip(lines, INJECTIONS):
        name, row, what = line.split("\t")
        assert (name, int(row), what) == (inj.name, inj.row, inj.summary) and len(what) > 10


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_nbtrace_version_flags(flag):
    loaded, code, out, _ = _run("nbtrace.cli:main", flag, block=False)
    assert (loaded, code) == (False, 0) and out.startswith("nbtrace, version 0.1.0")


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "compdef"),
                                           ("fish", "complete --no-files --command nbtrace")])
def test_shell_completion_scripts(shell, marker):
    loaded, code, out, _ = _run("nbtrace.cli:main", env={"_NBTRACE_COMPLETE": f"{shell}_source"}, block=False)
    assert (loaded, code) == (False, 0) and marker in out and "_NBTRACE_COMPLETE" in out


def test_shell_completion_answers_commands_and_options():
    env = {"_NBTRACE_COMPLETE": "bash_complete", "COMP_WORDS": "nbtrace ta", "COMP_CWORD": "1"}
    loaded, code, out, _ = _run("nbtrace.cli:main", env=env, block=False)
    assert (loaded, code) == (False, 0) and "plain,taps" in out.splitlines()
    env.update(COMP_WORDS="nbtrace diff --fo", COMP_CWORD="2")
    assert "plain,--format" in _run("nbtrace.cli:main", env=env, block=False)[2].splitlines()


# ----------------------------------------------------------------------------- docs stay in the repo


def test_no_reference_to_files_outside_the_repo():
    """A clone has no ../shared/design: every doc link must resolve inside the repository."""
    import re

    outside = re.compile(r"\.\./shared|shared/design|/work/")
    offenders = []
    for p in ROOT.rglob("*"):
        if (p.suffix not in (".md", ".py", ".toml", ".yaml", ".txt", ".c", ".h") or not p.is_file()
                or {"corpus", ".git", "__pycache__", "build"} & set(p.relative_to(ROOT).parts)):
            continue
        for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if outside.search(line) and p != pathlib.Path(__file__):
                offenders.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}")
    assert offenders == []


def test_markdown_links_resolve():
    import re

    broken = []
    for p in ROOT.rglob("*.md"):
        if {"corpus", ".git", "build"} & set(p.relative_to(ROOT).parts):
            continue
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", p.read_text(encoding="utf-8")):
            if "://" not in target and not (p.parent / target).exists():
                broken.append(f"{p.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_a_command_that_reaches_torch_anyway_is_one_line_not_a_traceback():
    import subprocess
    import sys

    code = ("import sys\nsys.modules['torch'] = None\nimport nbtrace.cli as cli\n"
            "cli.COMMANDS['render'] = 'nbtrace.sim.kernel:render_frame'\ncli.main(['render'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("nbtrace: error: this command needs PyTorch, which is not installed "
                           "(hint: pip install 'nbtrace[sim]')\n")
