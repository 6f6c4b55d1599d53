"""The distribution ships every subpackage and the tap specs (a plain `pip install .` must work)."""

from __future__ import annotations

import pathlib
import tomllib

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
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("nbtrace-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "nbtrace/tap_specs/nanobragg.yaml" in names
    assert "nbtrace/report/templates/report.html.j2" in names  # the HTML report's template
    assert "nbtrace/sim/c/nbtrace_tap.h" in names
    assert any(n.startswith("nbtrace/sim/c/") and n.endswith(".c") for n in names)
