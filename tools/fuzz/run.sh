#!/usr/bin/env bash
# Long atheris runs of every harness (tools/fuzz/README.md).
#   tools/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      default: 300 s each, all five targets
# Corpora and crashes go under ${KMED_FUZZ_DIR:-/tmp/kmed-fuzz}/{corpus,crashes}/TARGET; the
# summary line per target gives the inputs tried (libFuzzer's "Done N runs") and the crashes.
set -uo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-300}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(diameter nas frame hss cnn)
OUT=${KMED_FUZZ_DIR:-/tmp/kmed-fuzz}
PY=${PYTHON:-.venv/bin/python}
status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "$OUT/corpus/$t" "$OUT/crashes/$t" "$OUT/logs"
    log="$OUT/logs/$t.log"
    "$PY" "tools/fuzz/fuzz_$t.py" "$OUT/corpus/$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
        -timeout=30 -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t/" >"$log" 2>&1
    rc=$?
    runs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | grep -Eo '[0-9]+' | head -1)
    crashes=$(find "$OUT/crashes/$t" -type f | wc -l)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
    echo "$t: ${runs:-?} inputs in ${SECONDS_EACH}s, $cov, crashes: $crashes (exit $rc, log $log)"
    [ "$crashes" -eq 0 ] && [ "$rc" -eq 0 ] || status=1
done
exit $status
