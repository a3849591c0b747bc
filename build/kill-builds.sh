#!/usr/bin/env bash
# Kill tests at scale: runs KilledBuildTests (real `dotnet build`s SIGKILLed at seeded random moments, each followed by
# a build that must finish correctly) for several seeds, and prints every kill point with the stage it hit.
#   bash build/kill-builds.sh [SEEDS] [TRIALS_PER_SEED]      default: 5 seeds (1..5) x 10 trials
# Seeds can also be listed: SEEDS="7 42 99" bash build/kill-builds.sh. Pack the packages once and reuse them across seeds
# with QUANT_BUILD_FEED=artifacts/packages (after build/pack.sh 0.1.0-test).
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/build/fetch-test-assets.sh" >/dev/null || { echo "fetching test assets failed" >&2; exit 1; }
count="${1:-5}"
trials="${2:-10}"
seeds="${SEEDS:-$(seq 1 "$count")}"
cd "$repo"
dotnet build tests/Quant.Build.Tests -c Release -nologo -v:q || exit 1
status=0
kills=0
for seed in $seeds; do
  log="$(mktemp)"
  QUANT_KILL_SEED="$seed" QUANT_KILL_TRIALS="$trials" dotnet test tests/Quant.Build.Tests -c Release --no-build \
    --filter "FullyQualifiedName~KilledBuildTests" --logger "console;verbosity=detailed" >"$log" 2>&1
  code=$?
  grep -E '^\s*(reference build|trial [0-9]+ kill)' "$log" | sed "s/^ */seed $seed: /"
  kills=$((kills + $(grep -E '^\s*trial [0-9]+ kill' "$log" | grep -vc 'none: the build finished first')))
  if [ "$code" -ne 0 ]; then status=1; echo "seed $seed FAILED:"; grep -E 'Error Message|Assert|differs|failed' -A3 "$log" | head -40; fi
  rm -f "$log"
done
echo
echo "kills that landed (a build was running): $kills over seeds: $(echo $seeds | tr '\n' ' ')$( [ $status -eq 0 ] && echo '- every following build correct' || echo '- FAILURES above')"
exit "$status"
