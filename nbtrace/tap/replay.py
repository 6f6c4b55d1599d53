"""The reference side of a replay: a parsed reference trace, indexed for lookups by tap.

A replayed tap takes, at each traced pixel, the value the reference printed for the same tap,
loop index and occurrence (the n-th time the tap was printed for that pixel: subpixels and
thickness layers repeat per-subpixel taps).
"""

from __future__ import annotations

import os

import numpy as np

from nbtrace.errors import UsageError


class Reference:
    """Values of a reference trace by (canonical tap, pixel, loop, occurrence).

    Names match exactly; a name the reference does not print is also looked up through the tap
    spec's aliases (side "a" for the reference, "b" for the port), so a port may tap
    ``scattering_vector`` where the reference prints ``scattering_vec_A_inv``.
    """

    def __init__(self, trace, spec=None):
        self.path = trace.path
        self.pixels = tuple(trace.pixels)
        self._spec = spec
        self._values: dict[tuple, tuple[float, ...]] = {}
        self._names: set[str] = set()
        for r in trace.records:
            if r.index.pixel is None or r.kind not in ("number", "int"):
                continue
            self._names.add(r.name)
            self._values[(r.name, r.index.pixel, r.index.loop, r.index.occurrence)] = r.values
        self._canon: dict[str, str] | None = None

    @classmethod
    def load(cls, path, spec=None) -> "Reference":
        from nbtrace.engine.parse import read_trace

        return cls(read_trace(os.fspath(path)), spec)

    def has(self, name: str) -> bool:
        return self._resolve(name) is not None

    def value(self, name: str, pixel: tuple[int, int], loop: tuple, occurrence: int) -> np.ndarray:
        """The reference's values (float64, flat) for this record; UsageError when it has none."""
        ref_name = self._resolve(name)
        if ref_name is None:
            raise UsageError(f"cannot replay tap {name!r}: the reference trace never prints it", self.path,
                             "replay taps the reference prints (nbtrace taps check REF --trace ...)")
        vals = self._values.get((ref_name, pixel, loop, occurrence))
        if vals is None:
            where = f"pixel ({pixel[0]}, {pixel[1]})" + (f" loop {dict(loop)}" if loop else "")
            raise UsageError(f"cannot replay tap {name!r} at {where}, occurrence {occurrence}: the reference "
                             "has no such record", self.path,
                             "trace the same pixels on both sides; a tap called more often than the reference "
                             "printed it (subpixels, layers) has no reference value for the extra calls")
        return np.asarray(vals, dtype=np.float64)

    def _resolve(self, name: str) -> str | None:
        if name in self._names:
            return name
        if self._canon is None:
            self._canon = self._canonical_names()
        spec = self._get_spec()
        canon = spec.canonical(name, "b") if spec is not None else None
        return self._canon.get(canon) if canon is not None else None

    def _get_spec(self):
        if self._spec is None:
            from nbtrace.engine.spec import default_spec

            self._spec = default_spec()
        return self._spec

    def _canonical_names(self) -> dict[str, str]:
        spec = self._get_spec()
        out: dict[str, str] = {}
        for n in sorted(self._names):
            c = spec.canonical(n, "a")
            if c is not None:
                out.setdefault(c, n)
        return out
