"""``nbtrace hunt --replay TAP``: the hunt's traced pixels with TAP fed from the C reference.

The images are rendered as usual, without replay (a replay acts at traced pixels only). Then
the C reference traces every chosen pixel in one run, and the port traces the same pixels
with NBTRACE_REPLAY pointing at that C trace and NBTRACE_REPLAY_TAPS naming TAP: from TAP on,
the port computes from the reference's values. A bug upstream of TAP (or in TAP itself) no
longer shows in the traces; one downstream of TAP still does (issue 13, isolation).

The C run must end before the port's starts (its trace is the port's input), so the two trace
runs of a replayed hunt run one after the other, not side by side.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from nbtrace.errors import UsageError


def check_replay(taps) -> tuple[str, ...]:
    """The replayed taps, each a name. What a port cannot replay it says on stderr (the built-in
    simulator names its replayable taps), and the capture relays that line to the progress; the
    list is not checked here, since reading the simulator's would import torch in the hunt."""
    bad = [t for t in taps if not t.strip() or "," in t]
    if bad:
        raise UsageError(f"one tap name per option, got {bad[0]!r}", "--replay",
                         "repeat the option: --replay scattering_vec_A_inv --replay hkl_frac")
    return tuple(t.strip() for t in taps)


class ReplayedTraces:
    """The trace runs of both sides for a replayed hunt; ``trace`` is called once per side
    (from two threads): the port's call waits for the C trace it replays from."""

    def __init__(self, opts, args, say, capture: Callable):
        self._opts, self._args, self._say, self._capture = opts, args, say, capture
        self._ref: Future = Future()

    def trace(self, side: str, pixels, out_trace: Path):
        """Trace ``pixels`` on ``side`` into ``out_trace``; returns the CaptureResult."""
        if side == "c":
            try:
                res = self._capture("c", self._args, self._opts, self._say, pixels=pixels, out_trace=out_trace)
            except BaseException as exc:
                self._ref.set_exception(exc)  # the port's call then raises the same error
                raise
            self._ref.set_result(res.trace_path)
            return res
        ref = self._ref.result()
        self._say(f"hunt: tracing the port's pixels with {', '.join(self._opts.replay)} replayed from the C trace "
                  f"{ref}")
        return self._capture("py", self._args, self._opts, self._say, pixels=pixels, out_trace=out_trace,
                             replay=self._opts.replay, replay_ref=ref)


def replayed_both(opts, args, say, capture: Callable, pixels, out_c: Path, out_py: Path):
    """The C trace, then the port's trace replayed from it: (CaptureResult c, CaptureResult py)."""
    runs = ReplayedTraces(opts, args, say, capture)
    res_c = runs.trace("c", pixels, out_c)
    return res_c, runs.trace("py", pixels, out_py)
