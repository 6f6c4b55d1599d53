#!/usr/bin/env bash
# Incident 12: diff the two recorded traces (reference first). Extra options go to nbtrace diff,
# e.g. ./run.sh --format json
set -euo pipefail
cd "$(dirname "$0")"
exec nbtrace diff "$@" c_trace_phi.log py_trace_per_phi.log
