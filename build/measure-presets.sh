#!/usr/bin/env bash
# Measures the export stage over every preset x calibration type on PaddleOCR v4 rec and det and prints the
# markdown table of docs/export.md: float vs qat output cosine (min / avg / max over the calibration samples),
# last-bit stability, the precision mix. Maintainers' tool, not part of the build or the tests.
# Usage: bash build/measure-presets.sh REC_CALIB_DIR DET_CALIB_DIR   (folders of .npy samples as the
#        founders' datasets store them: uint8 NCHW BGR, rec [1,3,48,320], det [1,3,640,640])
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rec_dir="$(cd "$1" && pwd)"; det_dir="$(cd "$2" && pwd)"
bash "$repo/build/fetch-test-assets.sh" >/dev/null
models="$repo/.cache/assets/ocr-models"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
dotnet build "$repo/src/Quant.Check" -c Release -o "$work/tool" >/dev/null
echo "| model | preset | calibration_type | cosine min / avg / max | last-bit stability | int8 / int16 / fp16 / fp32 nodes | int16+fp16 |"
echo "|---|---|---|---|---|---|---|"
for which in rec det; do
  if [ "$which" = rec ]; then data="$rec_dir/*.npy"; pre=$'    scale: 1/255\n    mean: 0.5\n    std: 0.5'; model="$models/ch_PP-OCRv4_rec_infer.onnx"
  else data="$det_dir/*.npy"; pre=$'    scale: 1/255\n    mean: [0.485, 0.456, 0.406]\n    std: [0.229, 0.224, 0.225]'; model="$models/ch_PP-OCRv4_det_infer.onnx"; fi
  for preset in performance base precision upper_bound; do
    for method in max percentile kl mse default; do
      cfg="$work/$which-$preset-$method.yaml"
      printf 'preset: %s\nmodel_config:\n  activation:\n    calibration_type: %s\ninputs:\n  x:\n    data: "%s"\n%s\n' "$preset" "$method" "$data" "$pre" > "$cfg"
      dotnet "$work/tool/quant-check.dll" export "$model" --config "$cfg" --out "$work/$which-$preset-$method" --name m --cache "$work/cache-$which" >/dev/null
      node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const s = r.similarity[0].cosine, st = r.last_bit_stability[0], c = r.precision_counts;
        const n = k => c[k] || 0, total = n("int8") + n("int16") + n("float16") + n("float32");
        const m = r.calibration_candidates.length > 1 ? `default → ${r.calibration_method.replace(/\(.*/, "")}` : r.calibration_method.replace("percentile(", "percentile (").replace(/\)$/, ")");
        const f = v => v.toFixed(4);
        console.log(`| ${process.argv[2]} | ${process.argv[3]} | ${m} | ${f(s.min)} / ${f(s.avg)} / ${f(s.max)} | ${st.min_cosine.toFixed(5)} | ${n("int8")} / ${n("int16")} / ${n("float16")} / ${n("float32")} | ${Math.round(100 * (n("int16") + n("float16")) / total)}% |`);
      ' "$work/$which-$preset-$method/m.model_check.json" "$which" "$preset"
    done
  done
done
