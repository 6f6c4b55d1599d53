#!/usr/bin/env bash
# Reproduce incident 8 with the PyTorch simulator's fault injection and let nbtrace find it.
# Extra nbtrace options (--json, --out DIR) may be passed: ./run.sh --out report
set -euo pipefail
cd "$(dirname "$0")"
exec nbtrace hunt --inject kahn-default-one "$@" -- -lambda 1 -cell 50 50 50 90 90 90 -N 5 -default_F 100 -distance 40 -detpixels 64 -pixel 0.8 -oversample 1
