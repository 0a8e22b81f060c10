// qpipe's LiteRT oracle: a long-lived Node.js process that loads LiteRT.js (@litertjs/core, the TFLite
// runtime with XNNPACK compiled to wasm) once and runs .tflite models for the Go package internal/litert.
//
// Protocol: one JSON object a line on stdin, one JSON answer a line on stdout, in order.
//   {"id": 1, "op": "info", "model": "m.tflite"}
//     -> {"id": 1, "ok": true, "signatures": [{"key", "inputs": [T], "outputs": [T]}], "inputs": [T], "outputs": [T]}
//        with T = {"name", "index", "dtype", "shape"}; top-level inputs/outputs are the default signature's.
//   {"id": 2, "op": "run", "model": "m.tflite", "signature": "name" (optional; default signature otherwise),
//    "inputs": [{"file": "x.bin"} | {"seed": 7, "vocab": 100}], "outDir": "dir"}
//     -> {"id": 2, "ok": true, "outputs": [{"name", "dtype", "shape", "file"}], "loadMs", "runMs"}
//   Any failure -> {"id", "ok": false, "error": "..."}; the process keeps serving. After a wasm trap
//   (abort, out of bounds) the runtime's state cannot be trusted: the answer says so and the process exits
//   with status 3, so its owner starts a fresh one.
// The first line written is {"ready": true, ...} once the runtime is loaded, or {"ready": false, "error"}.
//
// Tensor files are raw little-endian element data (float32, int32 or uint8: the only element types
// LiteRT.js 2.5 accepts for model inputs and outputs). A {"seed"} input is generated here with the same
// generator as Go's litert.RandomInputs (see seededFill), so both give identical inputs.
//
// What LiteRT.js needs under plain Node.js 20, and why:
// - its wasm loader is written for browsers and web workers: it calls importScripts(url) when that exists and
//   then reads self.ModuleFactory. We provide both, evaluating the emscripten glue as a CommonJS script.
// - the emscripten glue and the C++ runtime log through console.*; stdout belongs to the protocol, so every
//   console method and process.stdout.write are sent to stderr.
// - some failures are only logged ("ERROR: ..." lines: a delegate that cannot prepare, tensors that cannot be
//   allocated) and the run then still returns outputs; any such line during a request fails the request.
// - the runtime has no resize API and refuses an input whose shape_signature holds -1 (dynamic batch), so
//   before loading, each -1 of a shape_signature is replaced by the static size in `shape` (in memory only).
// - the wasm build is pinned to the compat (no relaxed SIMD) file: relaxed SIMD results may differ between
//   CPUs, and the oracle must give the same bits everywhere.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const corePackage = require('@litertjs/core/package.json');
const wasmFile = path.join(path.dirname(require.resolve('@litertjs/core/package.json')), 'wasm', 'litert_wasm_compat_internal.js');

// ---- stdout is the protocol; everything else goes to stderr ----
const protocolWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const send = (obj) => protocolWrite(JSON.stringify(obj) + '\n');

const verbose = process.env.QPIPE_LITERT_VERBOSE === '1';
const failurePattern = /^ERROR:|Failed to allocate tensors|failed to prepare|Node number \d+ .* failed/i;
const chatterPattern = /^(INFO|WARNING|VERBOSE): |^Failed to create default WebGPU device/;
let logged = []; // failure lines seen during the current request
for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
  console[level] = (...args) => {
    const text = args.map(String).join(' ');
    if (failurePattern.test(text)) logged.push(text.trim());
    if (verbose || !chatterPattern.test(text)) process.stderr.write(text + '\n');
  };
}

// ---- web-worker shims for the wasm loader ----
globalThis.self = globalThis;
globalThis.importScripts = (url) => {
  const file = String(url).startsWith('file:') ? fileURLToPath(url) : String(url);
  const wrapped = vm.runInThisContext(
    '(function (exports, require, module, __filename, __dirname) {' + fs.readFileSync(file, 'utf8') + '\n})',
    { filename: file });
  const module = { exports: {} };
  wrapped(module.exports, require, module, file, path.dirname(file));
  globalThis.ModuleFactory = module.exports.default ?? module.exports;
};

// ---- flatbuffer patch: make every dynamic dimension static ----
// Walks Model.subgraphs[*].tensors[*] and, where shape_signature (Tensor field 7) has the same rank as
// shape (field 0), overwrites each -1 with the shape's size. Only vector contents change, never vtables
// (a vtable may be shared with tables of other types). Returns the number of dimensions changed.
function makeShapesStatic(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (p) => view.getUint32(p, true);
  const field = (table, slot) => {
    const vtable = table - view.getInt32(table, true);
    const entry = 4 + 2 * slot;
    if (entry >= view.getUint16(vtable, true)) return 0;
    const off = view.getUint16(vtable + entry, true);
    return off ? table + off : 0;
  };
  const vector = (ref) => { const start = ref + u32(ref); return { len: u32(start), at: start + 4 }; };
  const tables = (ref) => { const v = vector(ref); return Array.from({ length: v.len }, (_, i) => v.at + 4 * i + u32(v.at + 4 * i)); };
  let changed = 0;
  const subgraphs = field(u32(0), 2);
  if (!subgraphs) return 0;
  for (const subgraph of tables(subgraphs)) {
    const tensors = field(subgraph, 0);
    if (!tensors) continue;
    for (const tensor of tables(tensors)) {
      const shapeRef = field(tensor, 0);
      const sigRef = field(tensor, 7);
      if (!shapeRef || !sigRef) continue;
      const shape = vector(shapeRef);
      const sig = vector(sigRef);
      if (shape.len !== sig.len) continue;
      for (let d = 0; d < sig.len; d++) {
        if (view.getInt32(sig.at + 4 * d, true) === -1) {
          view.setInt32(sig.at + 4 * d, view.getInt32(shape.at + 4 * d, true), true);
          changed++;
        }
      }
    }
  }
  return changed;
}

// ---- seeded inputs, identical to Go's litert.RandomInputs ----
// Input i of a request with seed s draws from a Weyl sequence started at lo32(s) ^ hi32(s) ^ (i+1)*0x9E3779B9,
// each step mixed by murmur3's 32-bit finalizer. float32: (z>>>8)/2^23 - 1 in [-1, 1); int32: z % vocab
// (vocab <= 0 means 4); uint8: z>>>24.
function seededFill(array, dtype, seed, index, vocab) {
  let state = ((seed >>> 0) ^ (Math.floor(seed / 4294967296) >>> 0) ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  const next = () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  const ids = vocab > 0 ? vocab : 4;
  for (let k = 0; k < array.length; k++) {
    const z = next();
    if (dtype === 'float32') array[k] = ((z >>> 8) - 8388608) / 8388608;
    else if (dtype === 'int32') array[k] = z % ids;
    else array[k] = z >>> 24;
  }
}

const ARRAYS = { float32: Float32Array, int32: Int32Array, uint8: Uint8Array };

const details = (d) => ({ name: d.name, index: d.index, dtype: d.dtype, shape: Array.from(d.shape) });

function readInput(spec, detail, i) {
  const Array_ = ARRAYS[detail.dtype];
  if (!Array_) throw new Error(`input ${i} (${detail.name}) has element type ${detail.dtype}; LiteRT.js runs only float32, int32 and uint8 inputs`);
  const count = detail.shape.reduce((a, b) => a * b, 1);
  if (spec && typeof spec.file === 'string') {
    const raw = fs.readFileSync(spec.file);
    const want = count * Array_.BYTES_PER_ELEMENT;
    if (raw.length !== want) {
      throw new Error(`input ${i} (${detail.name}): ${spec.file} has ${raw.length} bytes, the model wants ${want} (${detail.dtype} [${detail.shape}])`);
    }
    return new Array_(new Uint8Array(raw).buffer); // copy: typed arrays need an aligned buffer
  }
  if (spec && Number.isSafeInteger(spec.seed)) {
    const array = new Array_(count);
    seededFill(array, detail.dtype, spec.seed, i, spec.vocab ?? 0);
    return array;
  }
  throw new Error(`input ${i} (${detail.name}): want {"file": path} or {"seed": integer}, got ${JSON.stringify(spec)}`);
}

function checkLogged(stage) {
  if (logged.length) throw new Error(`runtime reported while ${stage}: ${logged.join(' | ')}`);
}

async function load(modelPath) {
  const bytes = new Uint8Array(fs.readFileSync(modelPath));
  try {
    makeShapesStatic(bytes);
  } catch (e) {
    throw new Error(`not a readable flatbuffer (${e.message})`);
  }
  const model = await loadAndCompile(bytes, { accelerator: 'wasm' });
  try {
    checkLogged('loading');
  } catch (e) {
    model.delete();
    throw e;
  }
  return model;
}

function signatureOf(model, name) {
  if (name === undefined || name === null || name === '') return model;
  const sig = model.signatures[name];
  if (!sig) throw new Error(`no signature "${name}"; the model has ${JSON.stringify(Object.keys(model.signatures))}`);
  return sig;
}

async function info(req) {
  const model = await load(req.model);
  try {
    const signatures = Object.values(model.signatures).map((s) => ({
      key: s.key, inputs: s.getInputDetails().map(details), outputs: s.getOutputDetails().map(details),
    }));
    return { signatures, inputs: model.getInputDetails().map(details), outputs: model.getOutputDetails().map(details) };
  } finally {
    model.delete();
  }
}

async function run(req) {
  if (typeof req.outDir !== 'string' || !req.outDir) throw new Error('run needs "outDir"');
  const t0 = performance.now();
  const model = await load(req.model);
  const tensors = [];
  let outputs = [];
  try {
    const sig = signatureOf(model, req.signature);
    const inDetails = sig.getInputDetails();
    const outDetails = sig.getOutputDetails();
    const specs = req.inputs ?? [];
    if (specs.length !== inDetails.length) {
      throw new Error(`${specs.length} inputs given, signature "${sig.key}" takes ${inDetails.length}: ${JSON.stringify(inDetails.map(details))}`);
    }
    inDetails.forEach((d, i) => tensors.push(new Tensor(readInput(specs[i], d, i), Array.from(d.shape))));
    const t1 = performance.now();
    outputs = await sig.run(tensors);
    const t2 = performance.now();
    checkLogged('running');
    const written = outputs.map((t, i) => {
      const data = t.toTypedArray();
      const file = path.join(req.outDir, `output${i}.bin`);
      fs.writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return { ...details(outDetails[i]), file };
    });
    return { outputs: written, loadMs: t1 - t0, runMs: t2 - t1 };
  } finally {
    outputs.forEach((t) => t.delete());
    tensors.forEach((t) => t.delete());
    model.delete();
  }
}

// withLog appends the runtime's own failure lines to an exception's message: the exception often says only
// "Failed to load model from buffer" while the log says why.
function withLog(message) {
  const extra = [...new Set(logged)].filter((l) => !message.includes(l));
  if (!extra.length) return message;
  const shown = extra.slice(0, 4).join(' | ') + (extra.length > 4 ? ` | (${extra.length - 4} more)` : '');
  return `${message} (runtime log: ${shown})`;
}

// A wasm trap leaves the runtime's heap in an unknown state.
const isTrap = (e) => e instanceof WebAssembly.RuntimeError || /\bAborted\b|memory access out of bounds|unreachable/.test(String(e?.message ?? e));

const ops = { info, run, ping: async () => ({ litert: corePackage.version }) };

let loadAndCompile, Tensor;
try {
  ({ loadAndCompile, Tensor } = await import('@litertjs/core'));
  const { loadLiteRt } = await import('@litertjs/core');
  await loadLiteRt(wasmFile);
  send({ ready: true, litert: corePackage.version, node: process.version, wasm: path.basename(wasmFile) });
} catch (e) {
  send({ ready: false, error: `loading LiteRT.js ${corePackage.version}: ${e?.message ?? e}` });
  process.exit(1);
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    send({ id: null, ok: false, error: `bad request line: ${e.message}` });
    continue;
  }
  logged = [];
  const op = ops[req.op ?? 'run'];
  try {
    if (!op) throw new Error(`unknown op "${req.op}"; want info, run or ping`);
    if (req.op !== 'ping' && typeof req.model !== 'string') throw new Error('request needs "model"');
    send({ id: req.id, ok: true, ...(await op(req)) });
  } catch (e) {
    const message = String(e?.message ?? e);
    if (isTrap(e)) {
      send({ id: req.id, ok: false, trapped: true, error: `${req.model}: runtime trapped (${message}); the runner exits and must be restarted` });
      process.exit(3);
    }
    send({ id: req.id, ok: false, error: (req.model ? `${req.model}: ` : '') + withLog(message) });
  }
}
