"""nbtrace isolate on examples/toy_port: three planted bugs named in one run, as its README says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TOY = Path(__file__).resolve().parents[2] / "examples" / "toy_port"
BUGS = {"scattering_vec_A_inv": 1e-10, "F_latt": 0.008, "fluence_photons_per_m2": 1e-6}


def _nbtrace(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBTRACE_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.run([sys.executable, "-c", "from nbtrace.cli import main; main()", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A copy of the example (its reference trace regenerated, so it cannot go stale)."""
    d = tmp_path_factory.mktemp("toy")
    for name in ("reference.py", "toy_port.py", "reference.log"):
        shutil.copy(TOY / name, d / name)
    fresh = subprocess.run([sys.executable, "reference.py", "--trace", "32", "52", "--trace", "40", "45"],
                           cwd=d, capture_output=True, text=True, check=True).stdout
    assert fresh == (TOY / "reference.log").read_text()
    return d


def test_isolate_names_all_three_bugs(toy):
    r = _nbtrace("isolate", "reference.log", "--cmd", "python toy_port.py", "--json", cwd=toy)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert {b["tap"]: b["factor"] for b in doc["bugs"]} == pytest.approx(BUGS, rel=1e-9)
    assert doc["first_divergence"]["tap"] == "scattering_vec_A_inv"
    inherited = {s["tap"] for s in doc["stages"] if s["status"] == "inherited"}
    assert inherited == {"hkl_frac", "F_latt_a", "F_latt_b", "F_latt_c", "I_before_scaling", "I_pixel_final"}
    assert "1/N³" in next(b["explanation"] for b in doc["bugs"] if b["tap"] == "F_latt")


def test_readme_shows_the_real_output(toy):
    r = _nbtrace("isolate", "reference.log", "--cmd", "python toy_port.py", cwd=toy)
    assert r.returncode == 1
    readme = (TOY / "README.md").read_text()
    assert r.stdout in readme
    assert "ISOLATE: 3 independent bug(s)" in r.stdout


def _variant(toy, tmp_path, name, edits):
    text = (toy / "toy_port.py").read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    (tmp_path / name).write_text(text)
    for f in ("reference.log",):
        shutil.copy(toy / f, tmp_path / f)
    return tmp_path


FIXES = [("(lam * 1e10)", "lam"), ("/ N**3", ""), ("BEAMSIZE_MM**2", "(BEAMSIZE_MM * 1e-3)**2")]


def test_fixed_port_agrees(toy, tmp_path):
    d = _variant(toy, tmp_path, "fixed.py", FIXES)
    r = _nbtrace("isolate", "reference.log", "--cmd", "python fixed.py", cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("AGREE:")


def test_one_bug_left_is_named_alone(toy, tmp_path):
    d = _variant(toy, tmp_path, "one.py", FIXES[:2])
    r = _nbtrace("isolate", "reference.log", "--cmd", "python one.py", "--json", cwd=d)
    assert r.returncode == 1
    assert [b["tap"] for b in json.loads(r.stdout)["bugs"]] == ["fluence_photons_per_m2"]


def test_a_port_that_ignores_the_replay_is_inconclusive_not_a_bug(toy, tmp_path):
    # the scattering vector is tapped but the port keeps its own value of d
    d = _variant(toy, tmp_path, "deaf.py", [('d = tap("diffracted_vec", pos / R[..., None])',
                                            'd = pos / R[..., None]; tap("diffracted_vec", d)')])
    r = _nbtrace("isolate", "reference.log", "--cmd", "python deaf.py", "--json", cwd=d)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    svec = next(s for s in doc["stages"] if s["tap"] == "scattering_vec_A_inv")
    # d agreed in the baseline, so ignoring its replay changes nothing: the stage is still named
    assert svec["status"] == "bug"
    assert {b["tap"] for b in doc["bugs"]} == set(BUGS)


def test_a_port_that_prints_but_does_not_use_a_divergent_replay(toy, tmp_path):
    d = _variant(toy, tmp_path, "deaf.py", [('hkl = tap("hkl_frac", q @ (axes * 1e-10).T)',
                                            'hkl = q @ (axes * 1e-10).T; tap("hkl_frac", hkl)')])
    r = _nbtrace("isolate", "reference.log", "--cmd", "python deaf.py", "--json", cwd=d)
    doc = json.loads(r.stdout)
    flatt_a = next(s for s in doc["stages"] if s["tap"] == "F_latt_a")
    assert flatt_a["status"] == "inconclusive" and "replaying hkl_frac (which differed) left it bit-for-bit unchanged" in flatt_a["explanation"]
    assert {b["tap"] for b in doc["bugs"]} == set(BUGS)  # F_latt's own inputs are used: still found


@pytest.mark.parametrize("args, match", [
    (["missing.log", "--cmd", "python toy_port.py"], "missing.log"),
    (["reference.log"], "give the port's command"),
    (["reference.log", "--cmd", "no-such-program-xyz"], "no such program"),
    (["reference.log", "--cmd", "python -c 'raise SystemExit(3)'"], "exited with code 3"),
    (["reference.log", "--cmd", "python -c 'print(1)'"], "printed no taps"),
    (["reference.log", "--cmd", "python toy_port.py {nope}"], "unknown placeholder"),
    (["reference.log", "--cmd", "python toy_port.py", "--spec", "nope.yaml"], "nope.yaml"),
])
def test_bad_input_is_one_line_exit_2(toy, args, match):
    r = _nbtrace("isolate", *args, cwd=toy)
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("nbtrace: error:")]
    assert len(errors) == 1 and match in errors[0] and "Traceback" not in r.stderr


def test_reference_without_pixels_is_refused(tmp_path):
    (tmp_path / "ref.log").write_text("TRACE_C: x 1\n")
    r = _nbtrace("isolate", "ref.log", "--cmd", "python -c pass", cwd=tmp_path)
    assert r.returncode == 2 and re.search(r"traces no pixel", r.stderr)
