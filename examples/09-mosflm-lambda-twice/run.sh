#!/usr/bin/env bash
# Reproduce incident 9 with the PyTorch simulator's fault injection and let nbtrace find it.
# Extra nbtrace options (--json, --out DIR) may be passed: ./run.sh --out report
set -euo pipefail
cd "$(dirname "$0")"
exec nbtrace hunt --inject mosflm-lambda-twice "$@" -- -lambda 0.5 -mat rotated_orthorhombic.mat -N 5 -default_F 100 -distance 100 -detpixels 64 -pixel 0.4 -oversample 1
