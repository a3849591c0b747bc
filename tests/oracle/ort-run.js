// Runs an ONNX model in ONNX Runtime (the oracle) on .npy inputs and writes .npy outputs.
// Usage: node ort-run.js --model M.onnx --out DIR [--threads N] [--repeat N] [--warmup N]
//        [--optimization disabled|basic|extended|all] name=file.npy ...
// Prints one JSON line: {"outputs": {...name: file}, "latency_ms": [...], "median_ms": x, "min_ms": y}
'use strict';
const fs = require('fs');
const path = require('path');

const DTYPES = {
  '<f4': ['float32', Float32Array], '<f2': ['float16', Uint16Array], '<f8': ['float64', Float64Array],
  '|i1': ['int8', Int8Array], '|u1': ['uint8', Uint8Array], '<i2': ['int16', Int16Array], '<u2': ['uint16', Uint16Array],
  '<i4': ['int32', Int32Array], '<u4': ['uint32', Uint32Array], '<i8': ['int64', BigInt64Array], '<u8': ['uint64', BigUint64Array],
  '|b1': ['bool', Uint8Array],
};
const DESCR = Object.fromEntries(Object.entries(DTYPES).map(([d, [t]]) => [t, d]));

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not an npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: fortran order not supported`);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)[1];
  const dims = shapeText.split(',').map(s => s.trim()).filter(s => s.length).map(Number);
  const [type, Arr] = DTYPES[descr] || (() => { throw new Error(`${file}: dtype ${descr} not supported`); })();
  const start = hstart + hlen;
  const bytes = buf.subarray(start);
  const copy = new Uint8Array(bytes.length); copy.set(bytes);
  let data = new Arr(copy.buffer, 0, bytes.length / Arr.BYTES_PER_ELEMENT);
  if (type === 'bool') data = Uint8Array.from(data);
  return { type, dims, data };
}

function writeNpy(file, type, dims, data) {
  const descr = DESCR[type];
  if (!descr) throw new Error(`output type ${type} cannot be written as npy`);
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre[0] = 0x93; pre.write('NUMPY', 1, 'latin1'); pre[6] = 1; pre[7] = 0; pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

function safeName(name) { return name.replace(/[^A-Za-z0-9._-]/g, '_'); }

async function main() {
  const args = process.argv.slice(2);
  const opt = { threads: 1, repeat: 1, warmup: 0, optimization: 'all', inputs: {} };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--model') opt.model = args[++i];
    else if (a === '--out') opt.out = args[++i];
    else if (a === '--threads') opt.threads = Number(args[++i]);
    else if (a === '--repeat') opt.repeat = Number(args[++i]);
    else if (a === '--warmup') opt.warmup = Number(args[++i]);
    else if (a === '--optimization') opt.optimization = args[++i];
    else if (a.includes('=')) { const k = a.indexOf('='); opt.inputs[a.slice(0, k)] = a.slice(k + 1); }
    else throw new Error(`unknown argument ${a}`);
  }
  const ortDir = process.env.QUANT_ORT_NODE_MODULES;
  const ort = require(ortDir ? path.resolve(ortDir, 'onnxruntime-node') : 'onnxruntime-node');
  const session = await ort.InferenceSession.create(opt.model, {
    intraOpNumThreads: opt.threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: opt.optimization,
  });
  const feeds = {};
  for (const [name, file] of Object.entries(opt.inputs)) {
    const { type, dims, data } = readNpy(file);
    feeds[name] = new ort.Tensor(type, data, dims);
  }
  for (let i = 0; i < opt.warmup; i++) await session.run(feeds);
  const times = [];
  let results;
  for (let i = 0; i < Math.max(1, opt.repeat); i++) {
    const t0 = process.hrtime.bigint();
    results = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const outputs = {};
  if (opt.out) {
    fs.mkdirSync(opt.out, { recursive: true });
    for (const [name, t] of Object.entries(results)) {
      const file = path.join(opt.out, safeName(name) + '.npy');
      writeNpy(file, t.type, t.dims.map(Number), t.data);
      outputs[name] = file;
    }
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  process.stdout.write(JSON.stringify({ outputs, latency_ms: times, median_ms: median, min_ms: sorted[0],
    rss_peak_mb: process.resourceUsage().maxRSS / 1024 }) + '\n');
}

main().catch(e => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
