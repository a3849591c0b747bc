#!/usr/bin/env bash
# The one command that runs every test: fetches the pinned test assets (cached), then runs the
# whole solution's tests in Release (the real-model tests are compute-heavy), and closes with one
# "N passed, N failed" line summed over the test projects.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/build/fetch-test-assets.sh" >/dev/null || { echo "fetching test assets failed" >&2; exit 1; }
cd "$repo"
log="$(mktemp)"
dotnet test Quant.Build.sln -c Release --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -E '^\s+Passed: [0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -E '^\s+Failed: [0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -E '^\s+Skipped: [0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
rm -f "$log"
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
