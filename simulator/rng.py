"""Numerical Recipes ``ran1`` with nanoBragg's shared shuffle table (physics.md §7.4).

One :class:`Ran1` instance stands for the C's static table of one process; the misset, mosaic
and noise streams share it, each starting from its own (negative) seed.
"""

from __future__ import annotations

import numpy as np

_IA, _IM, _IQ, _IR, _NTAB = 16807, 2147483647, 127773, 2836, 32
_NDIV = 1 + (_IM - 1) // _NTAB
_AM = 1.0 / _IM
_RNMX = 1.0 - 1.2e-7


class Ran1:
    """The generator state; :meth:`next` advances ``seed`` (a one-element list, the C's ``long*``)."""

    def __init__(self) -> None:
        self.iy = 0
        self.iv = [0] * _NTAB

    @staticmethod
    def _step(idum: int) -> int:
        k = int(idum / _IQ)  # C integer division truncates toward zero
        idum = _IA * (idum - k * _IQ) - _IR * k
        return idum + _IM if idum < 0 else idum

    def next(self, seed: list[int]) -> float:
        """One uniform deviate in (0, 1) as the C float it returns."""
        if seed[0] <= 0 or self.iy == 0:
            idum = 1 if -seed[0] < 1 else -seed[0]
            for j in range(_NTAB + 7, -1, -1):
                idum = self._step(idum)
                if j < _NTAB:
                    self.iv[j] = idum
            self.iy = self.iv[0]
            seed[0] = idum
        seed[0] = self._step(seed[0])
        j = self.iy // _NDIV
        self.iy = self.iv[j]
        self.iv[j] = seed[0]
        temp = np.float32(_AM * self.iy)
        return float(np.float32(_RNMX)) if temp > _RNMX else float(temp)
