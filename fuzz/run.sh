#!/usr/bin/env bash
# Runs every fuzz target in turn: seeds the corpora from the test fixtures, then each target
# until it has run RUNS inputs or SECONDS have passed, whichever comes first. Any crash, hang
# (over 10 s for one input) or out-of-memory (over 2 GB) stops it with the input saved under
# fuzz/artifacts/TARGET/ and a non-zero exit.
#
#   fuzz/run.sh [SECONDS [RUNS [TARGET...]]]
#   CI: fuzz/run.sh 10; the long runs (fuzz/README.md): fuzz/run.sh 1800 10000000
#
# cargo fuzz needs nightly's -Z flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-10}
runs=${2:-100000000}
export RUSTC_BOOTSTRAP=1
# FUZZ_OPT_LEVEL (CI: 1, built ahead by .ci/run) overrides the release profile's opt-level 3.
if [ -n "${FUZZ_OPT_LEVEL:-}" ]; then
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=$FUZZ_OPT_LEVEL
fi
python3 seed.py corpus
cargo fuzz build -O
targets=("${@:3}")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(update_request backend_json backend_http backend_lines relay_lines record_content config tag_list tsig_verify dns_update dns_listener)
fi
for target in "${targets[@]}"; do
    log=$(mktemp)
    if ! cargo fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $target FAILED, input in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)
    echo "fuzz: $target: $done_line"
    rm -f "$log"
done
