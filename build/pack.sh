#!/usr/bin/env bash
# Packs Quant.Build (MSBuild tasks + targets + the quant-check tool) and Quant.Check (the dotnet tool)
# into artifacts/packages, the local source nuget.config names. Usage: build/pack.sh [version]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${1:-0.1.0-dev}"
out="$repo/artifacts/packages"
mkdir -p "$out"
for project in src/Quant.Build.Tasks src/Quant.Check; do
  dotnet pack "$repo/$project" -c Release -o "$out" -p:Version="$version" -nologo -v quiet \
    --artifacts-path "$repo/artifacts/pack-build"
done
ls -1 "$out"/*."$version".nupkg
