#!/usr/bin/env bash
# Two faults injected into the PyTorch simulator at once. First divergence names one;
# `nbtrace isolate` replays each divergent stage's inputs from the C reference and names both.
#   ./run.sh                                    svec-inverse-angstrom + flatt-normalization
#   ./run.sh mosflm-half-pixel flatt-normalization [--json]
set -euo pipefail
A=${1:-svec-inverse-angstrom}
B=${2:-flatt-normalization}
shift $(( $# < 2 ? $# : 2 ))
ARGS=(-lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100 -distance 500 -detpixels 256 -pixel 0.2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nbtrace capture c --pixel 141 141 --pixel 98 125 -o "$work/c.log" -- "${ARGS[@]}" 2>/dev/null
nbtrace isolate "$work/c.log" --sim --inject "$A" --inject "$B" "$@" -- "${ARGS[@]}"
