"""nbtrace: find where a port of a numerical simulation stops agreeing with its reference."""

__version__ = "0.1.0"
