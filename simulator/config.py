"""Frozen run configuration: every nanoBragg input after parse-time unit conversion.

All lengths are metres, angles radians, λ metres (physics.md §1.2). ``None`` means "flag not
given", which the auto-selection rules (§2.6, §2.7, §4.6, §5.9, §3.3) need to distinguish
from an explicit value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class SimConfig:
    # crystal (cell lengths Å, angles rad; the C converts the cell to m only after building it)
    cell: tuple[float, ...] | None = None
    mat_file: str | None = None
    misset: Vec3 | None = None
    misset_seed: int = 0
    hkl_file: str | None = None
    default_F: float = 0.0
    N: tuple[int, int, int] = (1, 1, 1)
    sample_size: Vec3 = (0.0, 0.0, 0.0)
    shape: str = "square"
    fudge: float = 1.0
    interpolate: bool | None = None
    # beam
    lambda0: float = 1e-10
    dispersion: float = 0.0
    dispsteps: int = -1
    hdivrange: float = -1.0
    vdivrange: float = -1.0
    hdivstep: float = -1.0
    vdivstep: float = -1.0
    hdivsteps: int = -1
    vdivsteps: int = -1
    round_div: bool = True
    sourcefile: str | None = None
    polar: float = 0.0
    polar_given: bool = False
    nopolar: bool = False
    fluence: float = 125932015286227086360700780544.0
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 1e-4
    water: float = 0.0
    dmin: float = 0.0
    # lab vectors (None = convention default); any of them switches to CUSTOM in the parser
    beam_vector: Vec3 | None = None
    polar_vector: Vec3 | None = None
    spindle_axis: Vec3 | None = None
    fdet_vector: Vec3 | None = None
    sdet_vector: Vec3 | None = None
    odet_vector: Vec3 | None = None
    twotheta_axis: Vec3 | None = None
    # spindle and mosaicity
    phi0: float = 0.0
    osc: float | None = None
    phistep: float | None = None
    phisteps: int | None = None
    mosaic_spread: float | None = None
    mosaic_domains: int | None = None
    mosaic_seed: int = -12345678
    # detector
    convention: str = "MOSFLM"
    pivot: str = "BEAM"
    pixel: float = 1e-4
    detpixels_f: int | None = None
    detpixels_s: int | None = None
    detsize_f: float = 0.1024
    detsize_s: float = 0.1024
    distance: float = 0.1
    close_distance: float | None = None
    Xbeam: float | None = None
    Ybeam: float | None = None
    Xclose: float | None = None
    Yclose: float | None = None
    ORGX: float | None = None
    ORGY: float | None = None
    rotx: float = 0.0
    roty: float = 0.0
    rotz: float = 0.0
    twotheta: float = 0.0
    curved: bool = False
    point_pixel: bool = False
    thickness: float = 0.0
    mu: float | None = None
    thicksteps: int = -1
    oversample: int = -1
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    roi: tuple[int, int, int, int] | None = None
    # outputs
    floatfile: str | None = None
    intfile: str | None = None
    noisefile: str | None = None
    pgmfile: str | None = None
    scale: float = 0.0
    pgmscale: float = 0.0
    adc: float = 40.0
    seed: int | None = None
    # tracing and execution
    trace_pixels: tuple[tuple[int, int], ...] = ()
    trace_roi: tuple[int, int, int, int] | None = None
    trace_dump: str | None = None
    dtype: str = "float64"
    device: str = "cpu"
    injections: frozenset[str] = field(default_factory=frozenset)
    progress: bool | None = None  # None: only when stderr is a terminal
    compile: bool = False
    max_steps: int = 1_000_000  # limits.DEFAULT_MAX_STEPS: terms per pixel
    max_pixels: int = 1 << 28  # limits.DEFAULT_MAX_PIXELS
    argv: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        """True when fault injection ``name`` is active."""
        return name in self.injections
