"""nbtrace isolate with the built-in simulator: two injected faults at once, both named
(examples/isolate-two-injections), and `capture py --replay` feeding the reference into it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "isolate-two-injections"
ARGS = "-lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 500 -detpixels 256 -pixel 0.2".split()
PIXELS = ["--pixel", "141", "141", "--pixel", "98", "125"]


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBTRACE_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _nbtrace(*args, **kw):
    return subprocess.run([sys.executable, "-c", "from nbtrace.cli import main; main()", *args],
                          env=_env(), capture_output=True, text=True, timeout=900, **kw)


@pytest.mark.parametrize("pair, first, groups", [
    (("svec-inverse-angstrom", "flatt-normalization"), "scattering_vec_A_inv",
     [["scattering_vec_A_inv"], ["F_latt_a", "F_latt_b", "F_latt_c", "F_latt_b[phi_tic]"]]),
    (("mosflm-half-pixel", "flatt-normalization"), "Fbeam_m",
     [["Fbeam_m", "Sbeam_m"], ["F_latt_a", "F_latt_b", "F_latt_c", "F_latt_b[phi_tic]"]]),
])
def test_isolate_names_both_injected_faults(pair, first, groups):
    r = subprocess.run(["bash", str(EXAMPLE / "run.sh"), *pair, "--json"], env=_env(), capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 1, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["first_divergence"]["tap"] == first  # first divergence alone names one of them
    assert doc["bug_groups"] == groups
    flatt = next(b for b in doc["bugs"] if b["tap"] == "F_latt_a")
    assert flatt["factor"] == pytest.approx(0.2) and flatt["replayed"] == ["hkl_frac"]
    assert "inherited" in {s["status"] for s in doc["stages"]}
    readme = (EXAMPLE / "README.md").read_text()
    assert all(f"BUG {', '.join(g)}:" in readme for g in groups)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "c.log"
    r = _nbtrace("capture", "c", *PIXELS, "-o", str(path), "--", *ARGS)
    assert r.returncode == 0, r.stderr
    return path


def test_capture_py_replay_feeds_the_reference_into_the_kernel(reference, tmp_path):
    # the scattering vector fault, replayed away at its own tap: everything downstream agrees
    out = tmp_path / "py.log"
    r = _nbtrace("capture", "py", *PIXELS, "--inject", "svec-inverse-angstrom", "--replay", "scattering_vec_A_inv",
                 "--replay-ref", str(reference), "-o", str(out), "--", *ARGS)
    assert r.returncode == 0, r.stderr
    d = _nbtrace("diff", str(reference), str(out))
    assert d.returncode == 0 and d.stdout.startswith("AGREE: All "), d.stdout[:500]
    # without the replay the same run diverges
    plain = tmp_path / "plain.log"
    _nbtrace("capture", "py", *PIXELS, "--inject", "svec-inverse-angstrom", "-o", str(plain), "--", *ARGS)
    assert _nbtrace("diff", str(reference), str(plain)).returncode == 1


def test_a_tap_the_simulator_cannot_replay_is_said_not_dropped(reference, tmp_path):
    r = _nbtrace("capture", "py", *PIXELS, "--replay", "polar", "--replay-ref", str(reference),
                 "-o", str(tmp_path / "p.log"), "--", *ARGS)
    assert r.returncode == 0 and "cannot replay polar" in r.stderr


@pytest.mark.parametrize("extra, match", [
    (["--replay", "hkl_frac"], "needs both"),
    (["--replay-ref", "nope.log", "--replay", "hkl_frac"], "no such reference trace"),
])
def test_capture_replay_bad_input(extra, match):
    r = _nbtrace("capture", "py", *PIXELS, *extra, "--", *ARGS)
    assert r.returncode == 2 and match in r.stderr


def test_isolate_sim_bad_input(reference):
    r = _nbtrace("isolate", str(reference), "--sim", "--inject", "no-such-fault", "--", *ARGS)
    assert r.returncode == 2 and "unknown injection" in r.stderr
    r = _nbtrace("isolate", str(reference), "--cmd", "python x.py", "--inject", "float32")
    assert r.returncode == 2 and "--inject is for the built-in simulator" in r.stderr


def test_nbsim_refuses_an_environment_session():
    env = _env()
    env["NBTRACE_PIXELS"] = "1 1"
    r = subprocess.run([sys.executable, "-m", "nbtrace.sim", *ARGS, "-trace_pixel", "1", "1"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "not NBTRACE_PIXELS" in r.stderr and r.stdout == ""
