#!/usr/bin/env bash
# Engine vs ONNX Runtime benchmark on the real models (same run, same inputs): median latencies,
# engine/ORT ratio at 1 and 2 threads, engine peak memory. Fetches the pinned assets first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/build/fetch-test-assets.sh" >/dev/null
exec dotnet run -c Release --project "$repo/benchmarks/Quant.Engine.Benchmarks" -- "$@"
