#!/usr/bin/env bash
# Reproduce incident 13 with the PyTorch simulator's fault injection and let nbtrace find it.
# Extra nbtrace options (--json, --out DIR) may be passed: ./run.sh --out report
set -euo pipefail
cd "$(dirname "$0")"
exec nbtrace hunt --inject sample-pivot-order "$@" -- -dials -detector_rotx 3 -detector_roty 2 -detector_rotz 1 -twotheta 4 -lambda 1 -cell 50 50 50 90 90 90 -N 5 -default_F 100 -distance 100 -detpixels 64 -pixel 0.4 -oversample 1
