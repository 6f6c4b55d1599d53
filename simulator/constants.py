"""Physical constants and unit factors, with the exact values nanoBragg uses (physics.md §1.1)."""

from __future__ import annotations

#: Thomson cross-section r_e² (m²).
R_E_SQR = 7.94079248018965e-30
#: Avogadro's number (mol⁻¹), as nanoBragg spells it.
AVOGADRO = 6.02214179e23
#: hc in eV·Å for -energy.
HC_EV_ANGSTROM = 12398.42
#: Default integrated fluence (photons/m²).
DEFAULT_FLUENCE = 125932015286227086360700780544.0
#: C's M_1_PI literal; 1/math.pi may differ in the last bit, and RTD feeds every angle.
M_1_PI = 0.318309886183790671537767526745028724
#: Degrees per radian exactly as the C computes it; deg→rad divides by it (physics §9.32).
RTD = 180.0 * M_1_PI
#: Smallest normal double, the C's substitute for a zero volume / ratio.
DBL_MIN = 2.2250738585072014e-308
#: Water background: structure factor and molar mass (g/mol).
WATER_F = 2.57
WATER_MW = 18.0
#: Fixed source distance (m); only used to build source vectors that are then normalized.
SOURCE_DISTANCE = 10.0
#: ROUND-shape normalisation constant.
ROUND_NORM = 0.723601254558268
#: the line -trace_pixels_after writes to stderr once the image files are complete
IMAGE_WRITTEN = "nbsim: image written"
