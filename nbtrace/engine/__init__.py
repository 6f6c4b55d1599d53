"""The diff engine: pure, torch-free functions from trace text to frozen results.

model (records, traces) <- parse (dialects) ; spec (YAML tap lists) ; units ; align ; compare ;
localize ; trends ; diff (the whole pipeline) ; results (what renderers read) ; images and maps
(image and region metrics). Nothing here runs a program or prints a report.
"""
