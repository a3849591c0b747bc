#!/usr/bin/env bash
# The one command that runs every test: fetches the pinned test assets (cached), then runs the
# whole solution's tests in Release (the real-model tests are compute-heavy).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/build/fetch-test-assets.sh" >/dev/null
cd "$repo"
dotnet test Quant.Build.sln -c Release --logger "console;verbosity=normal" "$@"
