#!/usr/bin/env bash
# The main job, for now: run the real PaddleOCR mobile text-direction classifier shipped in
# samples/ppocr-cls with the Quant.Build engine (quant-check infer) and print what it decided.
# Needs only the .NET SDK.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sample="$repo/samples/ppocr-cls"
out="$repo/artifacts/sample-output"
dotnet build "$repo/src/Quant.Check" -c Release -v quiet -nologo >/dev/null
for input in "$sample"/inputs/*.x.npy; do
  name="$(basename "$input" .x.npy)"
  dotnet "$repo/src/Quant.Check/bin/Release/net10.0/quant-check.dll" infer "$sample/ch_ppocr_mobile_v2.0_cls_infer.onnx" \
    --input "x=$input" --out "$out/$name" --repeat 5
done
