#!/usr/bin/env bash
# Incident 19: diff the two recorded traces (reference first). Extra options go to nbtrace diff,
# e.g. ./run.sh --format json
set -euo pipefail
cd "$(dirname "$0")"
exec nbtrace diff "$@" c_trace.log py_trace.log
