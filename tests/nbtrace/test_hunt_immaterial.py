"""A hunt whose traces differ only immaterially (incident 20 injected: the port's trace sums one
subpixel) with the real producers: exit 1, so its report never opens with AGREE, and its pixel
table never says "agrees" for those pixels (issue 12)."""

from __future__ import annotations

import pytest

from nbtrace.cli import main

ARGS = ["-oversample", "2", "-lambda", "1", "-cell", "50", "50", "50", "90", "90", "90", "-N", "5", "-default_F",
        "100", "-distance", "100", "-detpixels", "64", "-pixel", "0.4"]


def test_immaterial_only_traces_are_never_called_agree(capsys, monkeypatch):
    monkeypatch.delenv("NB_C_BIN", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exc:
        main(["hunt", "--inject", "trace-one-subpixel", "--", *ARGS])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert exc.value.code == 1
    assert lines[0] == ("DIVERGE (the traces, not the images): no divergence reaches the output, but the traces "
                        "differ")
    assert "AGREE" not in out and " agrees " not in out.split("traced pixels (", 1)[1].split("loop taps", 1)[0]
    assert out.count("immaterial only") == 4
