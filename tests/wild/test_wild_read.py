"""Every real log of the wild corpus (tests/data/wild, copied unchanged from the earlier port's
repository) that holds ten or more TRACE lines self-diffs through the CLI: exit 0, "agree", and
the same numbers on both sides (a self-diff that is not symmetric is a reading that depends on
the side, as `Oversample` once did).

The few that are refused are refused for the reason the rules allow (no readable tap at all, or
two traces in one file), and say so; they are listed here with that reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbtrace.cli import main

WILD = Path(__file__).resolve().parents[1] / "data" / "wild"
MIN_TRACE_LINES = 10

# file -> what the refusal says (exit 2), with why that is right
REFUSED = {
    # unified diffs of a C trace against a port trace: two traces in one file
    "193__reports__2025-10-cli-flags__phase_e__trace_diff.txt": "a unified diff of two traces",
    "214__reports__2025-10-cli-flags__phase_h__trace_diff.log": "a unified diff of two traces",
    "235__reports__2025-10-cli-flags__phase_h6__post_fix__trace_diff.txt": "a unified diff of two traces",
    "257__reports__2025-10-cli-flags__phase_k__f_latt_fix__trace_diff.txt": "a unified diff of two traces",
    # a pytest log quoting the port's source (print(f"TRACE_PY: ...{x:.15g}")): no value printed
    "465__reports__2025-10-cli-flags__phase_l__scaling_validation__20251008T153142Z_carryover_cache_plumbing__"
    "pytest_run2.log": "no trace lines found",
    # a hand-written comparison report quoting lines of both sides, indented
    "538__reports__2025-11-source-weights__phase_e__20251009T191401Z__trace__diff.txt": "no trace lines found",
    # a Python snippet calling emit_trace("TRACE_PY", ...): source code, no value printed
    "628__reports__2026-01-vectorization-parity__phase_e0__20251010T105617Z__comparison__trace_helper_snippet.txt":
        "no trace lines found",
}


def _trace_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(b"TRACE" in line for line in fh)


LOGS = sorted(p for p in [*WILD.glob("*.log"), *(WILD / "corpus").iterdir()]
              if p.suffix != ".tsv" and _trace_lines(p) >= MIN_TRACE_LINES)


def test_the_corpus_is_there():
    assert len(LOGS) == 184  # the 8 top-level logs and the corpus files with >= 10 TRACE lines
    assert set(REFUSED) <= {p.name for p in LOGS}


def _self_diff(path: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["diff", str(path), str(path), "--format", "json"])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name[:60])
def test_self_diff_agrees_symmetrically(path, capsys):
    code, out, err = _self_diff(path, capsys)
    if path.name in REFUSED:
        assert code == 2 and out == "" and REFUSED[path.name] in err and err.count("\n") == 1, err
        return
    assert code == 0, err
    report = json.loads(out)
    counts = report["counts"]
    assert report["verdict"] == "agree" and counts["matched"] > 0 and counts["divergent"] == 0
    assert counts["only_a"] == counts["only_b"] == 0
    assert report["unmatched"] == {"a": [], "b": []}
    assert report["pixels"]["a"] == report["pixels"]["b"]
    # every parser warning is there twice, once per side, word for word
    warnings = report["warnings"]
    side_a = sorted(w[3:] for w in warnings if w.startswith("A: "))
    side_b = sorted(w[3:] for w in warnings if w.startswith("B: "))
    assert side_a == side_b
