"""Taps for any Python port: print the values the production pass computes, for a few pixels.

::

    from nbtrace.tap import tap

    q = tap("scattering_vec_A_inv", (d - i) / lam)          # (S, F, 3) array: pixel axes 0, 1
    h = tap("hkl_frac", h, pixel_axes=(1, 2))              # any two axes are (slow, fast)
    F = tap("F_cell", F, pixel_axes=0, pixels=(s_idx, f_idx))   # one flat axis of a pixel chunk
    tap("fluence_photons_per_m2", fluence, pixel_axes=None)      # one value for every pixel
    tap("h_frac", h_phi, loop={"phi_tic": i})                    # a loop line (TRACE_PY_PHI ...)

With no session active, :func:`tap` is one dictionary lookup and returns its argument, so the
calls stay in production code. A session starts from code::

    with nbtrace.tap.session(pixels=[(200, 300)], out="port.log"):
        image = simulate(...)

or from the environment, so the port needs no new flag (read when this module is imported; the
trace is written when the process exits)::

    NBTRACE_PIXELS="200 300;10 20"   traced pixels, "slow fast" pairs separated by ';'
    NBTRACE_OUT=port.log             the trace file ('-' or unset: stdout)
    NBTRACE_ROI="xmin xmax ymin ymax" region dump (inclusive, fast first), to NBTRACE_DUMP (taps.npz)
    NBTRACE_PREFIX=TRACE_PY          the tap prefix
    NBTRACE_DETECTOR="spixels fpixels" only for taps on a flat pixel axis without pixels=
    NBTRACE_REPLAY=ref.log           replay: the reference trace ...
    NBTRACE_REPLAY_TAPS=a,b          ... and the taps whose values it replaces at the traced pixels

A session starts from the environment only when NBTRACE_PIXELS or NBTRACE_ROI is set.

Values are gathered for the selected pixels only (on CUDA only those elements reach the host),
detached copies: the array a tap returns is the one it was given (replay aside), so autograd is
untouched. Replay returns a new array with the reference's values at the traced pixels (for torch
via ``index_put``: gradients still flow to every other element). Under ``torch.compile`` a tap
with no session traces to nothing; with a session it is a graph break (the recording runs
eagerly, ``torch.compiler.disable``), and the compiled graphs around it are unchanged.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

from nbtrace.errors import NbtraceError, UsageError
from nbtrace.tap.session import Session

__all__ = ["tap", "session", "setup", "current", "Session", "start_from_env"]

_STATE: dict = {"session": None}


def tap(name: str, value, *, pixel_axes=(0, 1), pixels=None, origin=(0, 0), loop=None, integer=None, where=None):
    """Record ``value`` as tap ``name`` at the session's pixels and return it (or, for a replayed
    tap, a copy holding the reference's values at the traced pixels).

    value: numpy array, torch tensor, jax array or number.
    pixel_axes: (slow_axis, fast_axis) of a detector-shaped array (default (0, 1)); one int for a
        flat pixel axis (with ``pixels`` or the session's ``detector``); None for a value shared by
        every pixel. The remaining axes are the tap's components, printed flat (3-vectors ...).
    pixels: (slow_idx, fast_idx) index arrays giving the pixel of each element along a flat pixel
        axis (a chunk or a list of pixels); with ``pixel_axes=None``, the pixels the shared value
        belongs to.
    origin: (slow, fast) of element [0, 0] of a detector-shaped array that covers a sub-window.
    loop: {"phi_tic": i, ...}: a loop tap; taps with the same loop labels share one line.
    integer: print as integers (default: when the array has an integer dtype).
    where: boolean mask over the pixel axes (over ``pixels`` for a flat axis or a shared value):
        only pixels where it is True record this tap (a value the reference prints only there).
    """
    s = _STATE["session"]
    if s is None:
        return value
    if not s.wrapped and "torch._dynamo" in sys.modules:
        _wrap(s)  # torch.compile came into use after the session started
    return s.tap(name, value, pixel_axes, pixels, origin, loop, integer, where)


def setup(key: str, value) -> None:
    """A setup-block line ``PREFIX:key=value`` (provenance, run choices); nothing without a session."""
    s = _STATE["session"]
    if s is not None:
        s.setup_value(key, value)


def current() -> Session | None:
    """The active session, or None."""
    return _STATE["session"]


@contextlib.contextmanager
def session(pixels=(), **kwargs):
    """Trace ``pixels`` (and/or ``roi=``) while the block runs; see :class:`Session` for the
    arguments (``out=None`` keeps the trace in memory: ``s.text()``, ``s.trace()``)."""
    s = _activate(Session(pixels, **kwargs))
    try:
        yield s
    finally:
        _STATE["session"] = None
        s.close()


def _activate(s: Session) -> Session:
    if _STATE["session"] is not None:
        raise UsageError("a tap session is already active",
                         hint="close it first (one session per process; NBTRACE_PIXELS starts one at import)")
    if "torch._dynamo" in sys.modules:  # torch.compile in use (never imported here: it costs ~1 s)
        _wrap(s)
    _STATE["session"] = s
    return s


def _wrap(s: Session) -> None:
    """Under torch.compile: one graph break per tap instead of dynamo tracing numpy and file I/O."""
    s.wrapped = True
    disable = getattr(getattr(sys.modules["torch"], "compiler", None), "disable", None)
    if disable is not None:
        s.tap = disable(s.tap)
        s.setup_value = disable(s.setup_value)


def _parse_pairs(text: str, var: str) -> list[tuple[int, int]]:
    out = []
    for part in text.replace("\n", ";").split(";"):
        words = part.replace(",", " ").split()
        if not words:
            continue
        if len(words) != 2 or not all(w.lstrip("-").isdigit() for w in words):
            raise UsageError(f"{var}={text!r}: {part.strip()!r} is not 'slow fast'",
                             hint=f'e.g. {var}="200 300;10 20" (0-based slow then fast, pairs separated by ;)')
        out.append((int(words[0]), int(words[1])))
    return out


def _ints(text: str, var: str, n: int) -> tuple[int, ...]:
    words = text.replace(",", " ").split()
    if len(words) != n or not all(w.lstrip("-").isdigit() for w in words):
        raise UsageError(f"{var}={text!r} is not {n} integers",
                         hint='e.g. NBTRACE_ROI="100 199 50 149" (xmin xmax ymin ymax)' if n == 4
                         else 'e.g. NBTRACE_DETECTOR="1024 1024" (spixels fpixels)')
    return tuple(int(w) for w in words)


def session_from_env(env=None) -> Session | None:
    """The session the environment asks for (not yet active), or None when it asks for none."""
    env = os.environ if env is None else env
    pixels = env.get("NBTRACE_PIXELS", "").strip()
    roi = env.get("NBTRACE_ROI", "").strip()
    replay = env.get("NBTRACE_REPLAY", "").strip()
    taps = [t.strip() for t in env.get("NBTRACE_REPLAY_TAPS", "").split(",") if t.strip()]
    if taps and not replay:
        raise UsageError("NBTRACE_REPLAY_TAPS is set but NBTRACE_REPLAY is not",
                         hint="NBTRACE_REPLAY=ref.log names the reference trace whose values are replayed")
    if not (pixels or roi):
        # replay alone is read by programs that open their own session (the built-in simulator)
        return None
    det = env.get("NBTRACE_DETECTOR", "").strip()
    out = env.get("NBTRACE_OUT", "").strip() or "-"
    if out != "-":
        _probe(out, "NBTRACE_OUT")
    return Session(_parse_pairs(pixels, "NBTRACE_PIXELS") if pixels else (),
                   roi=_ints(roi, "NBTRACE_ROI", 4) if roi else None,
                   dump=env.get("NBTRACE_DUMP", "").strip() or None, out=out,
                   prefix=env.get("NBTRACE_PREFIX", "").strip() or "TRACE_PY",
                   detector=_ints(det, "NBTRACE_DETECTOR", 2) if det else None,
                   replay=replay or None, replay_taps=taps)


def _probe(path: str, var: str) -> None:
    try:
        with open(path, "w", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {var}={path} ({exc.strerror or exc})",
                         hint="check that the folder exists and is writable") from None


def start_from_env() -> Session | None:
    """Start the session the environment asks for (done once, when this module is imported);
    bad settings are one line on stderr and exit code 2, as for any bad input."""
    if _STATE["session"] is not None:
        return None
    try:
        s = session_from_env()
        if s is None:
            return None
        _activate(s)
    except NbtraceError as exc:
        sys.stderr.write(f"nbtrace.tap: error: {exc.one_line()}\n")
        raise SystemExit(2) from None
    atexit.register(_close_env, s)
    return s


def _close_env(s: Session) -> None:
    if _STATE["session"] is s:
        _STATE["session"] = None
    try:
        s.close()
    except NbtraceError as exc:
        sys.stderr.write(f"nbtrace.tap: error: {exc.one_line()}\n")


start_from_env()
