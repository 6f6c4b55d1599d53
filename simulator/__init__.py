"""Instrumented, vectorised, differentiable PyTorch port of nanoBragg (see README.md).

Public entry points: :func:`simulator.cli.main` (the ``nbsim`` command),
:func:`simulator.setup.build_setup`, :func:`simulator.kernel.render_frame`.
"""

__version__ = "0.1.0"
