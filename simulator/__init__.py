"""Instrumented, vectorised, differentiable PyTorch port of nanoBragg (see README.md).

Public entry points: :func:`nbtrace.sim.entry.main` (the ``nbsim`` command; torch-free until a run),
:func:`simulator.setup.build_setup`, :func:`simulator.kernel.render_frame`.
"""

__version__ = "0.1.0"
