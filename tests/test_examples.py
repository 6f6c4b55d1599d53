"""Run every example of examples/ (each folder's run.sh) and check that nbtrace names the
incident's root-cause tap and class (examples/*/expect.json, from incidents.md and
docs/CONTRACTS.md §5). The runs are independent processes, so two go at a time (2 cores);
each hunt runs its C and PyTorch producers in parallel too, but the C side is quick."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FOLDERS = sorted(p.parent.name for p in EXAMPLES.glob("*/expect.json"))
DEFAULT_HUNT = "__default_hunt__"


def _env():
    env = dict(os.environ)
    # run.sh calls `nbtrace`; make sure it is the one installed beside this interpreter
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(name: str) -> subprocess.CompletedProcess:
    if name == DEFAULT_HUNT:
        cmd = [sys.executable, "-c", "from nbtrace.cli import main; main()", "hunt", "--json"]
        return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    expect = json.loads((EXAMPLES / name / "expect.json").read_text())
    fmt = ["--format", "json"] if expect.get("command") == "diff" else ["--json"]
    return subprocess.run(["bash", str(EXAMPLES / name / "run.sh"), *fmt], capture_output=True, text=True,
                          env=_env(), timeout=600)


@pytest.fixture(scope="module")
def results():
    with ThreadPoolExecutor(max_workers=2) as pool:
        names = [DEFAULT_HUNT, *FOLDERS]
        return dict(zip(names, pool.map(_run, names)))


def test_every_injection_has_an_example():
    sys.path.insert(0, str(EXAMPLES.parent))
    from nbtrace.sim.injections import NAMES

    covered = {json.loads((EXAMPLES / f / "expect.json").read_text()).get("inject") for f in FOLDERS}
    assert NAMES <= covered, f"no example for {sorted(NAMES - covered)}"
    for f in FOLDERS:
        readme = (EXAMPLES / f / "README.md").read_text()
        assert "What went wrong" in readme and "run.sh" in readme


def test_default_hunt_agrees(results):
    r = results[DEFAULT_HUNT]
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "agree" and doc["root_cause"] is None
    assert doc["config"]["built_in_default"] is True and len(doc["traced_pixels"]) >= 4


def _check_hunt(name, r, expect):
    assert r.returncode in (0, 1), f"{name}: exit {r.returncode}: {r.stderr[-1500:]}"
    doc = json.loads(r.stdout)
    rc = doc["root_cause"]
    if expect["tap"] is None:  # the precision class: any root cause must be classed as precision
        assert rc is None or rc["kind"] in expect["kinds"], f"{name}: {rc}"
        return
    assert r.returncode == 1, f"{name}: the hunt reported agreement: {doc['headline']}"
    if expect.get("immaterial"):
        # a trace-only difference the images do not share: listed as immaterial, never a cause
        assert rc is None, f"{name}: {doc['headline']}"
        imm = {t["tap"]: t for t in doc["immaterial"]}
        assert expect["tap"] in imm, f"{name}: {doc['headline']}"
        assert math.isclose(imm[expect["tap"]]["ratio"], expect["factor"], rel_tol=1e-6), imm
        return
    assert rc is not None, f"{name}: {doc['headline']}"
    named = _named_finding(doc, expect)
    assert named is not None, f"{name}: expected {expect['tap']}, got {rc['tap']}: {doc['headline']}"
    assert named["kind"] in expect["kinds"], f"{name}: kind {named['kind']}: {doc['headline']}"
    if expect.get("factor") is not None:
        assert named["factor"] is not None and math.isclose(named["factor"], expect["factor"], rel_tol=1e-6), named
    kinds = [p["kind"] for p in doc["root_cause_patterns"]]
    # a pattern over the traced pixels (nbtrace.engine.trends) is reported exactly where the incident shows one
    assert kinds == expect.get("patterns", []), f"{name}: patterns {kinds}: {doc['headline']}"


def _named_finding(doc, expect):
    """The finding nbtrace names for the incident: the root cause itself, or another tap the
    engine reports as introduced (divergent with every upstream tap agreeing) and names in
    its headline — e.g. `steps` beside `I_before_scaling` for source weights (incident 14)."""
    taps = [expect["tap"], *expect.get("also_ok", [])]
    rc = doc["root_cause"]
    if rc["tap"] in taps:
        return rc
    for t in doc["taps"]:
        if t["tap"] == expect["tap"] and t["status"] == "introduced" and f"`{t['tap']}`" in doc["headline"]:
            return t
    return None


def _check_diff(name, r, expect):
    assert r.returncode == expect["exit"], f"{name}: exit {r.returncode}: {r.stderr[-1500:]}"
    if expect["exit"] == 2:
        assert expect["mention"] in r.stderr and r.stderr.count("\n") == 1
        return
    doc = json.loads(r.stdout)
    rc = doc["root_cause"]
    assert rc["tap"] == expect["tap"], doc["headline"]
    text = json.dumps(rc)
    assert expect["mention"].replace(" 0", "") in text or expect["mention"] in doc["headline"], rc


@pytest.mark.parametrize("name", FOLDERS)
def test_example_names_root_cause(results, name):
    expect = json.loads((EXAMPLES / name / "expect.json").read_text())
    r = results[name]
    (_check_diff if expect.get("command") == "diff" else _check_hunt)(name, r, expect)


def test_loop_iteration_named_for_phi_carryover(results):
    doc = json.loads(results["12-phi-carryover"].stdout)
    assert doc["root_cause"]["index"]["loop"] == {"phi_tic": 0}


def test_edge_fault_located_by_maps(results):
    doc = json.loads(results["21-edge-geometry"].stdout)
    assert doc["maps"] is not None and doc["maps"]["verdict"] == "diverge"
    first = doc["maps"]["taps"][[t["tap"] for t in doc["maps"]["taps"]].index("pixel_pos_meters")]
    assert first["central_agrees"] is True and first["edge_band_px"] is not None
