#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]: runs the proptest fuzz targets (the frame codec, the guest
# metadata socket's HTTP handling, the API's JSON bodies) round after round, each round with
# fresh random inputs and more cases than `cargo test` uses, until about SECONDS (default 60)
# have passed; building comes first and is not counted. Prints a summary and exits non-zero
# if any round failed; the log of a failed round is kept under target/fuzz/.
#
# CI gets a short run from the normal `cargo test --workspace`, which runs every target with
# its small default number of cases. Override a round's size with FUZZ_CASES_<NAME>
# (e.g. FUZZ_CASES_API=50).
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logs=$root/target/fuzz
mkdir -p "$logs"

# name package test-file cases-per-property-per-round
targets=(
    "codec gpuspot-common fuzz_codec ${FUZZ_CASES_CODEC:-2000}"
    "metadata gpuspot-agent fuzz_metadata ${FUZZ_CASES_METADATA:-300}"
    "api gpuspot-e2e fuzz_api ${FUZZ_CASES_API:-150}"
)
# A round that runs this long is hung (a proptest round has no timeout of its own).
round_limit=${FUZZ_ROUND_LIMIT:-900}

declare -A properties=() rounds=() spent=() failed=()
echo "fuzz: building the targets (not counted in the ${seconds}s)..."
for target in "${targets[@]}"; do
    read -r name package test cases <<<"$target"
    cargo test -q -p "$package" --test "$test" --no-run
    properties[$name]=$(cargo test -q -p "$package" --test "$test" -- --list 2>/dev/null |
        grep -c ': test$' || true)
    rounds[$name]=0
    spent[$name]=0
done

run_round() {
    local name=$1 package=$2 test=$3 cases=$4
    local round=$((rounds[$name] + 1)) began=$SECONDS
    local log=$logs/$name-round-$round.log
    local status=0
    PROPTEST_CASES=$cases timeout --kill-after=10 "$round_limit" \
        cargo test -q -p "$package" --test "$test" >"$log" 2>&1 || status=$?
    if ((status == 0)); then
        rm -f "$log"
    else
        failed[$name]=$log
        local why="exit $status"
        ((status == 124)) && why="still running after ${round_limit}s: hung?"
        echo "fuzz: $name round $round FAILED ($why; log: $log)"
        tail -n 40 "$log" | sed 's/^/    /'
    fi
    rounds[$name]=$round
    spent[$name]=$((spent[$name] + SECONDS - began))
}

start=$SECONDS
while ((SECONDS - start < seconds)) && ((${#failed[@]} < ${#targets[@]})); do
    for target in "${targets[@]}"; do
        read -r name package test cases <<<"$target"
        if [[ -n ${failed[$name]:-} ]] || ((SECONDS - start >= seconds && rounds[$name] > 0)); then
            continue
        fi
        run_round "$name" "$package" "$test" "$cases"
    done
done

echo
echo "fuzz summary ($((SECONDS - start))s of fuzzing, budget ${seconds}s):"
printf '  %-9s %6s %11s %15s %8s  %s\n' target rounds properties "cases/property" seconds result
for target in "${targets[@]}"; do
    read -r name package test cases <<<"$target"
    result=ok
    [[ -n ${failed[$name]:-} ]] && result="FAILED: ${failed[$name]}"
    printf '  %-9s %6d %11d %15d %8d  %s\n' "$name" "${rounds[$name]}" "${properties[$name]}" \
        $((rounds[$name] * cases)) "${spent[$name]}" "$result"
done
if ((${#failed[@]} > 0)); then
    exit 1
fi
