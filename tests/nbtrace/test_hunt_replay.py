"""`nbtrace hunt --replay TAP` with the real producers (the C reference and the PyTorch simulator)
on a 48² detector: the port's traced pixels continue from the C trace's TAP (issue 13)."""

from __future__ import annotations

import json
import sys

import pytest

from nbtrace.cli import main

SMALL = ["-lambda", "0.5", "-cell", "100", "100", "100", "90", "90", "90", "-N", "5", "-default_F", "100",
         "-distance", "500", "-detpixels", "48", "-pixel", "0.4"]


@pytest.fixture(autouse=True)
def reference_c(monkeypatch):
    monkeypatch.delenv("NB_C_BIN", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["hunt", *argv])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_replaying_the_faulty_tap_makes_every_traced_tap_agree(tmp_path, capsys):
    code, out, err = run(["--inject", "svec-inverse-angstrom", "--replay", "scattering_vec_A_inv",
                          "--out", str(tmp_path), "--", *SMALL], capsys)
    assert code == 1, err  # the images (rendered without replay) still differ
    lines = out.splitlines()
    assert lines[0] == "DIVERGE at or upstream of scattering_vec_A_inv: the traced pixels agree once it is replayed"
    assert any(ln.startswith("replayed: scattering_vec_A_inv — the port's traced pixels took") for ln in lines)
    import re

    start = lines.index(next(ln for ln in lines if ln.startswith("traced pixels (all 7 traced again")))
    rows = [re.match(r"\s+\d+\s+\(\d+, \d+\)\s+\S+\s+\S+\s+(\S+)", ln) for ln in lines[start + 2:start + 20]]
    verdicts = [m[1] for m in rows if m]
    assert verdicts == ["agrees"] * 7, out
    assert "hunt: tracing the port's pixels with scattering_vec_A_inv replayed from the C trace" in err
    meta = json.loads((tmp_path / "port.trace.meta.json").read_text())
    assert meta["env"]["NBTRACE_REPLAY_TAPS"] == "scattering_vec_A_inv"
    assert meta["env"]["NBTRACE_REPLAY"] == str(tmp_path / "c.trace")  # the file it names exists
    assert (tmp_path / "c.trace").is_file() and not (tmp_path / "pixels_c.trace").exists()
    # the --out traces diff as they are, and agree
    with pytest.raises(SystemExit) as exc:
        main(["diff", str(tmp_path / "c.trace"), str(tmp_path / "port.trace")])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("AGREE: All ")


def test_without_the_replay_the_same_hunt_names_the_tap(capsys):
    code, out, err = run(["--json", "--inject", "svec-inverse-angstrom", "--", *SMALL], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["root_cause"]["tap"] == "scattering_vec_A_inv" and doc["replayed"] == []


def test_the_replay_uncovers_a_second_bug_downstream(capsys):
    # first-divergence alone names the scattering vector; replayed, the lattice factor's ÷N shows
    code, out, err = run(["--json", "--inject", "svec-inverse-angstrom", "--inject", "flatt-normalization",
                          "--replay", "scattering_vec_A_inv", "--", *SMALL], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["replayed"] == ["scattering_vec_A_inv"]
    assert doc["root_cause"]["tap"] in ("F_latt_a", "F_latt_b", "F_latt_c")
    assert doc["root_cause"]["factor"] == pytest.approx(0.2)
    assert "(with scattering_vec_A_inv replayed from the C trace)" in doc["headline"]
    assert all(p["root_tap"] in ("F_latt_a", "F_latt_b", "F_latt_c") for p in doc["traced_pixels"])
    assert not any(t["tap"] == "scattering_vec_A_inv" and t["status"] != "agree" for t in doc["taps"])


def test_a_port_command_using_nbtrace_tap_is_replayed_too(capsys):
    # any port that reads NBTRACE_REPLAY (here the simulator run as a user's command) is replayed
    code, out, err = run(["--json", "--port-cmd", f"{sys.executable} -m nbtrace.sim", "--inject",
                          "svec-inverse-angstrom", "--replay", "scattering_vec_A_inv", "--", *SMALL], capsys)
    doc = json.loads(out)
    assert code == 1, err
    assert doc["headline_short"].startswith("DIVERGE at or upstream of scattering_vec_A_inv")
    assert doc["verdict"] == "diverge" and doc.get("root_cause") is None
    assert [p["root_tap"] for p in doc["traced_pixels"]] == [None] * 7


def test_an_empty_replay_name_is_refused_before_any_render(capsys):
    code, out, err = run(["--replay", " ", "--", *SMALL], capsys)
    assert code == 2 and out == ""
    assert err.startswith("nbtrace: error: ") and "--replay: one tap name per option, got ' '" in err
    assert err.count("\n") == 1 and "Traceback" not in err
