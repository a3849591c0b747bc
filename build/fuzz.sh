#!/usr/bin/env bash
# Fuzzes the toolchain's file loaders (docs/limits.md, "Fuzzing"): build/fuzz.sh [TARGET|all] [SECONDS]
# Targets: onnx config npy npz raw image qbm baseline package-spec. Each runs SECONDS (default 120) in its own process;
# a summary line per loader gives executions, time, findings (minimized, in $FUZZ_OUT/findings/TARGET), corpus size
# and the number of distinct loader outcomes (error messages reached: the harness has no coverage instrumentation).
# Not part of the test run; the committed regressions under tests/data/fuzz are replayed by `dotnet test`.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:-all}"
seconds="${2:-120}"
out="${FUZZ_OUT:-$root/artifacts/fuzz}"
all=(onnx config npy npz raw image qbm baseline package-spec)
if [[ "$target" == all ]]; then targets=("${all[@]}"); else targets=("$target"); fi

dotnet build "$root/tests/Quant.Fuzz" -c Release -v quiet -nologo >/dev/null || { echo "fuzz.sh: the harness does not build" >&2; exit 2; }
dll="$root/tests/Quant.Fuzz/bin/Release/net10.0/Quant.Fuzz.dll"
mkdir -p "$out"
status=0
for t in "${targets[@]}"; do
  # A native fault or a stack overflow kills the process: the input it was running is the finding.
  dotnet "$dll" "$t" "$seconds" "$root" "$out" "${FUZZ_SEED:-1}"
  rc=$?
  current="$out/current-$t.bin"
  if [[ $rc -gt 3 && -s "$current" ]]; then
    mkdir -p "$out/findings/$t"
    name="process-died-$(sha256sum "$current" | cut -c1-16)"
    cp "$current" "$out/findings/$t/$name.bin"
    echo "$t: the process died (exit $rc) -> $out/findings/$t/$name.bin"
  fi
  [[ $rc -ne 0 ]] && status=1
done
exit $status
