#!/usr/bin/env bash
# The main job: pack Quant.Build, then `dotnet build` the sample project samples/ppocr-cls, which quantizes
# the real PaddleOCR mobile text-direction classifier as part of its build (export, convert, compile and the
# accuracy checks of each) and leaves cls.qat.onnx and cls.qbm in its output folder; then run the float and the
# qat model in the engine and the compiled program in Quant.Runtime (quant-check infer) on two real text lines.
# Needs only the .NET SDK.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sample="$repo/samples/ppocr-cls"
out="$repo/artifacts/sample-output"
version=0.1.0-dev
bash "$repo/build/pack.sh" "$version" >/dev/null
# A package cache of the sample's own: a re-packed 0.1.0-dev must not be shadowed by an older extraction.
packages="$repo/artifacts/sample-packages"
rm -rf "$packages/quant.build"
dotnet build "$sample" -c Release -nologo -p:RestorePackagesPath="$packages"
bin="$sample/bin/Release/net10.0"
dotnet "$bin/ppocr-cls.dll"
tool="$packages/quant.build/$version/tools/net10.0/quant-check.dll"
for model in "$sample/models/ch_ppocr_mobile_v2.0_cls_infer.onnx" "$bin/cls.qat.onnx" "$bin/cls.qbm"; do
  for input in "$sample"/inputs/*.x.npy; do
    name="$(basename "$input" .x.npy)"
    echo "== $(basename "$model") on $name"
    dotnet "$tool" infer "$model" --input "x=$input" --out "$out/$(basename "$model")/$name" --repeat 5
  done
done
