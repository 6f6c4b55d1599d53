#!/usr/bin/env bash
# Reproduce incident 10 with the PyTorch simulator's fault injection and let nbtrace find it.
# Extra nbtrace options (--json, --out DIR) may be passed: ./run.sh --out report
set -euo pipefail
cd "$(dirname "$0")"
exec nbtrace hunt --inject triclinic-volume-formula "$@" -- -lambda 1 -cell 50 60 70 86 94 96 -N 5 -default_F 100 -distance 100 -detpixels 64 -pixel 0.4 -oversample 1
