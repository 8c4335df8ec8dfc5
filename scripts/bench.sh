#!/usr/bin/env bash
# Whole-process benchmarks; prints one table. See scripts/bench.py for what is measured.
#   scripts/bench.sh [--quick | --pace]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/bench.py "$@"
