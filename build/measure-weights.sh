#!/usr/bin/env bash
# Measures error compensation (node_config inputN: ec) and bias correction on PaddleOCR v4 rec and det and prints the
# tables of docs/config-reference.md ("Error compensation", "Bias correction"): per GEMM output cosine for int8 weights,
# ec and int16 weights, and end-to-end output cosine in ONNX Runtime. Maintainers' tool, not part of the build or the
# tests; the work is done in process by benchmarks/Quant.Engine.Benchmarks/WeightRefinementTable.cs.
# Usage: bash build/measure-weights.sh DATASETS_DIR   (holding ppocr-rec/{calib,dev} and ppocr-det/calib)
# rec calibrates on ppocr-rec/calib and is measured on the first 20 lines of ppocr-rec/dev; det calibrates on 8 photos of
# ppocr-det/calib and is measured on 4 others (below). A "-" for a model's folders skips it (the program's arguments).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
datasets="$(cd "$1" && pwd)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rec-calib" "$work/rec-heldout" "$work/det-calib" "$work/det-heldout"
ln -s "$datasets"/ppocr-rec/calib/*.npy "$work/rec-calib/"
ls "$datasets"/ppocr-rec/dev/*.npy | sort | head -n 20 | xargs -I{} ln -s {} "$work/rec-heldout/"
# det: the held-out photos must contain text (a text map of a fruit bowl is all zeros and its cosine means nothing):
# photos 5-8 (sorted; text scenes) are held out, photos 1-4 and 11-14 (text and natural scenes) calibrate.
ls "$datasets"/ppocr-det/calib/*.npy | sort | sed -n '1,4p;11,14p' | xargs -I{} ln -s {} "$work/det-calib/"
ls "$datasets"/ppocr-det/calib/*.npy | sort | sed -n '5,8p' | xargs -I{} ln -s {} "$work/det-heldout/"
bash "$repo/build/fetch-test-assets.sh" >/dev/null
dotnet build -c Release "$repo/benchmarks/Quant.Engine.Benchmarks" >/dev/null
dotnet "$repo/benchmarks/Quant.Engine.Benchmarks/bin/Release/net10.0/Quant.Engine.Benchmarks.dll" weights \
  "$work/rec-calib" "$work/rec-heldout" "$work/det-calib" "$work/det-heldout"
