#!/usr/bin/env bash
# The hypothesis fuzz tests (tests/fuzz) run longer, with fresh random examples:
#   tools/fuzz/long.sh [SCALE]        SCALE multiplies every max_examples (default 20)
# Prints hypothesis' statistics (examples tried per test, outcomes seen); a failure prints the
# seed to reproduce it (pytest --hypothesis-seed=N) and the @reproduce_failure blob.
set -euo pipefail
cd "$(dirname "$0")/../.."
export KMED_FUZZ_SCALE=${1:-20} KMED_FUZZ_RANDOM=1
exec "${PYTHON:-.venv/bin/python}" -m pytest -q -p no:cacheprovider tests/fuzz --hypothesis-show-statistics \
    -o timeout=0 "${@:2}"
