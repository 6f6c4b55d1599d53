"""Shared helpers for the simulator tests: run nbsim in-process and read its trace text."""

from __future__ import annotations

import numpy as np
import torch

from nbtrace.sim.cli import main, parse_args
from nbtrace.sim.kernel import Kernel, render_frame
from nbtrace.sim.setup import build_setup

SMALL = "-lambda 1 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 100 -detpixels 32 -pixel 0.1".split()


def run_cli(capsys, argv):
    """(exit code, stdout, stderr) of ``nbsim argv``."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def taps(text: str, pixel_index: int = 0) -> dict[str, list[np.ndarray]]:
    """Tap name -> list of values (one per occurrence) for the pixel_index-th traced pixel."""
    blocks = text.split("TRACE_CONFIG:")[1:]
    out: dict[str, list[np.ndarray]] = {}
    for line in blocks[pixel_index].splitlines()[1:]:
        if not line.startswith("TRACE_PY: "):
            continue
        name, *vals = line[len("TRACE_PY: "):].split()
        out.setdefault(name, []).append(np.array([float(v) for v in vals]))
    return out


def loop_lines(text: str, kind: str) -> list[dict[str, float]]:
    rows = []
    for line in text.splitlines():
        # key=value lines only (not the indexed "TRACE_PY_SOURCE 2: name value" lines)
        if line.startswith(f"TRACE_PY_{kind} ") and "=" in line.split()[1]:
            rows.append({k: float(v) for k, v in (p.split("=") for p in line.split()[1:])})
    return rows


def frame(argv) -> np.ndarray:
    """Full image (spixels, fpixels) in the compute dtype, as numpy float64."""
    with torch.no_grad():
        return render_frame(build_setup(parse_args(list(argv)))).double().numpy()


def pixels(argv, pix) -> np.ndarray:
    """Values of the given (slow, fast) pixels computed alone."""
    setup = build_setup(parse_args(list(argv)))
    s = torch.tensor([p[0] for p in pix])
    f = torch.tensor([p[1] for p in pix])
    with torch.no_grad():
        return Kernel(setup).render(s, f).double().numpy()
