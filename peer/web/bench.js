// The browser peer benchmark (peer/web/README.md): ResNet-50 at 224 in one page, on one
// WebGPU adapter, engine after engine: ours (the wasm module of web/, `WebLogits`), ONNX
// Runtime Web's WebGPU execution provider on the same ONNX file, and TensorFlow.js's WebGPU
// backend on a graph model of the same weights, all on the same fixed input.
//
// Per engine and batch size: a fresh session; the first run (session creation from the model's
// bytes, shader and pipeline creation included, plus the first inference) is timed; its output
// is checked against ours (max |diff| <= 1e-4 x max |ours|) and only then do the timed runs
// count: `warmup` untimed inferences, then `runs` timed ones, of which the median is reported.
// Every inference goes from and to CPU memory (the input uploaded, the logits read back), for
// every engine alike.
//
// URL parameters: batches=1,8  runs=10  warmup=1  engines=ours,ort,tfjs  profile=1 (after an
// engine's timed runs, one more forward pass with GPU timestamps around each of its kernels,
// where the engine can: ours. ONNX Runtime Web 1.30's WebGPU bundle is the native WebGPU EP,
// whose profiler writes a file inside its wasm file system that the page cannot read, and has
// no `env.webgpu.profiling.ondata` of the older JSEP build.)
//
// The result: window.benchResult (JSON-able) and <body data-state="done">; on failure
// data-state="failed" and window.benchError; meanwhile window.benchPartial, the rows so far.

const params = new URLSearchParams(location.search);
const BATCHES = (params.get("batches") ?? "1,8").split(",").filter((b) => b).map(Number);
const RUNS = Number(params.get("runs") ?? 10);
const WARMUP = Number(params.get("warmup") ?? 1);
const ENGINES = (params.get("engines") ?? "ours,ort,tfjs").split(",");
const PROFILE = params.get("profile") === "1";
const TOL = 1e-4;
const MODEL = "model/resnet50.onnx";

const $ = (id) => document.getElementById(id);
const log = (line) => {
  $("log").textContent += line + "\n";
  console.log(line);
};
const status = (text) => ($("status").textContent = text);

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r;
}
const bytes = async (url) => new Uint8Array(await (await fetchOk(url)).arrayBuffer());

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// max |a - b| / max |ref|, over the first ref.length values.
function relDiff(a, ref) {
  let diff = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return diff / scale;
}

// ---- engines: each is { name, version, create(modelBytes, batch, size) -> { run(input) -> Float32Array,
//      profile?(input) -> [{name, kernel, ms}], release() } } ----

async function ours() {
  const { default: init, WebLogits } = await import("./pkg/resnet_web.js");
  await init();
  return {
    name: "ours (wasm)",
    version: "resnet-web (this checkout)",
    async create(model, batch, size) {
      // The bytes are copied into the module's memory by `load` (as ORT copies them into its
      // own): part of the first run for both.
      const w = await WebLogits.load(model, "resnet50.onnx", batch, size);
      return {
        adapter: w.adapter,
        run: (input) => w.logits(input),
        profile: async (input) => JSON.parse(await w.profile(input)),
        release: () => w.free(),
      };
    },
  };
}

async function onnxruntime() {
  const ort = await import("./ort/ort.webgpu.bundle.min.mjs");
  // No cross-origin isolation on this server, so no wasm threads: ORT's CPU side runs one
  // thread (the graph's ops all run on WebGPU; see `placement` in the result).
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = "warning";
  return {
    name: "onnxruntime-web (webgpu)",
    version: `onnxruntime-web ${ort.env.versions?.web ?? "?"}`,
    async create(model, batch, size) {
      const session = await ort.InferenceSession.create(model, {
        executionProviders: ["webgpu"],
        graphOptimizationLevel: "all",
      });
      const [inName] = session.inputNames;
      const [outName] = session.outputNames;
      const run = async (input) => {
        const x = new ort.Tensor("float32", input, [batch, 3, size, size]);
        const out = await session.run({ [inName]: x });
        const y = out[outName];
        const data = y.data;
        y.dispose?.();
        return data;
      };
      return {
        run,
        release: () => session.release(),
      };
    },
  };
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const el = document.createElement("script");
    el.src = src;
    el.onload = resolve;
    el.onerror = () => reject(new Error(`${src}: failed to load`));
    document.head.append(el);
  });
}

// TensorFlow.js: the graph model that tools/gen_browser_peer_tfjs.py converted from the same
// weights (NCHW in, transposed on the GPU by its first op). Its files are fetched before the
// clock starts, as the other engines get their model's bytes: `create` parses them from memory.
async function tfjs() {
  await loadScript("tfjs/tfjs/dist/tf.min.js");
  await loadScript("tfjs/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js");
  const tf = window.tf;
  if (!(await tf.setBackend("webgpu"))) throw new Error("tfjs: the webgpu backend did not start");
  await tf.ready();
  const dir = "model/tfjs/";
  const json = await (await fetchOk(dir + "model.json")).json();
  const shards = [];
  for (const group of json.weightsManifest) {
    for (const path of group.paths) shards.push(await bytes(dir + path));
  }
  const weightData = new Uint8Array(shards.reduce((n, b) => n + b.length, 0));
  shards.reduce((at, b) => (weightData.set(b, at), at + b.length), 0);
  const artifacts = {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    signature: json.signature,
    userDefinedMetadata: json.userDefinedMetadata,
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
  };
  return {
    name: "tfjs (webgpu)",
    // The webgpu backend's UMD bundle does not say its version; package-lock.json pins it.
    version: `@tensorflow/tfjs ${tf.version.tfjs} + tfjs-backend-webgpu (package-lock.json)`,
    async create(_onnxBytes, batch, size) {
      const m = await tf.loadGraphModel(
        tf.io.fromMemory({ ...artifacts, weightData: weightData.slice().buffer }));
      return {
        run: async (input) => {
          const x = tf.tensor(input, [batch, 3, size, size]);
          const y = m.predict(x);
          const data = await y.data();
          x.dispose();
          y.dispose();
          return data;
        },
        release: () => m.dispose(),
      };
    },
  };
}

const FACTORIES = { ours, ort: onnxruntime, tfjs };

async function adapterInfo() {
  if (!navigator.gpu) throw new Error("no navigator.gpu: this browser has no WebGPU");
  const a = await navigator.gpu.requestAdapter();
  if (!a) throw new Error("navigator.gpu.requestAdapter() found no adapter");
  const i = a.info ?? {};
  return {
    vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
    features: [...a.features].sort(),
  };
}

async function main() {
  const result = {
    userAgent: navigator.userAgent,
    adapter: await adapterInfo(),
    runs: RUNS,
    warmup: WARMUP,
    tolerance: TOL,
    profiled: PROFILE,
    engines: {},
    rows: [],
    profiles: [],
  };
  // What is done so far, for a driver that stops waiting (`--limit-s`).
  window.benchPartial = result;
  log(`adapter: ${JSON.stringify(result.adapter)}`);
  status("Fetching the model and the input…");
  const meta = await (await fetchOk("model/meta.json")).json();
  const model = await bytes(MODEL);
  const inputAll = new Float32Array((await bytes("model/input.bin")).buffer);
  const expectedAll = new Float32Array((await bytes("model/expected.bin")).buffer);
  const size = meta.size, per = 3 * size * size, classes = meta.classes;
  result.model = { file: MODEL, bytes: model.length, torch: meta.torch, opset: meta.opset };

  const engines = [];
  for (const name of ENGINES) {
    if (!FACTORIES[name]) throw new Error(`unknown engine ${name}`);
    try {
      const e = await FACTORIES[name]();
      result.engines[name] = e.version;
      engines.push([name, e]);
    } catch (err) {
      // An engine that cannot start is reported, and the others still run.
      result.engines[name] = `failed to start: ${err?.message ?? err}`;
      log(`${name}: ${result.engines[name]}`);
    }
  }
  if (engines[0]?.[0] !== "ours") throw new Error("engines must start with ours (the reference)");

  for (const batch of BATCHES) {
    if (batch > meta.batch) throw new Error(`input.bin holds ${meta.batch} images, not ${batch}`);
    const input = inputAll.slice(0, batch * per);
    const expected = expectedAll.subarray(0, batch * classes);
    let reference = null;
    for (const [key, e] of engines) {
      status(`${e.name}, batch ${batch}: first run…`);
      const row = { engine: key, name: e.name, batch };
      result.rows.push(row);
      let s = null;
      try {
        // A fresh copy of the model's bytes per session, outside the clock (an engine may
        // take ownership of what it is given).
        const copy = model.slice();
        const t0 = performance.now();
        s = await e.create(copy, batch, size);
        const t1 = performance.now();
        const first = await s.run(input.slice());
        const t2 = performance.now();
        row.createS = (t1 - t0) / 1e3;
        row.firstInferS = (t2 - t1) / 1e3;
        row.firstRunS = (t2 - t0) / 1e3;
        if (s.adapter) row.adapter = s.adapter;
        if (key === "ours") reference = first;
        row.relVsOurs = relDiff(first, reference);
        row.relVsOnnxruntimeCpu = relDiff(first, expected);
        row.checkOk = row.relVsOurs <= TOL;
        log(`${e.name} b${batch}: first run ${row.firstRunS.toFixed(2)} s, ` +
            `vs ours ${row.relVsOurs.toExponential(2)}, vs ORT CPU ${row.relVsOnnxruntimeCpu.toExponential(2)}`);
        if (!row.checkOk) throw new Error(`output differs from ours by ${row.relVsOurs} relative (> ${TOL})`);
        status(`${e.name}, batch ${batch}: timed runs…`);
        for (let i = 0; i < WARMUP; i++) await s.run(input.slice()); // untimed
        row.runsMs = [];
        for (let i = 0; i < RUNS; i++) {
          const x = input.slice(); // outside the clock: the copy an engine may consume
          const t = performance.now();
          await s.run(x);
          row.runsMs.push(performance.now() - t);
        }
        row.medianMs = median(row.runsMs);
        row.imagesPerS = batch / (row.medianMs / 1e3);
        log(`${e.name} b${batch}: median ${row.medianMs.toFixed(1)} ms of ${RUNS}, ${row.imagesPerS.toFixed(3)} images/s`);
        if (PROFILE && s.profile) {
          status(`${e.name}, batch ${batch}: profile…`);
          try {
            result.profiles.push({ engine: key, batch, kernels: await s.profile(input.slice()) });
          } catch (err) {
            result.profiles.push({ engine: key, batch, error: String(err?.message ?? err) });
          }
        }
      } catch (err) {
        row.error = String(err?.message ?? err);
        log(`${e.name} b${batch}: ${row.error}`);
      } finally {
        s?.release();
      }
    }
  }
  return result;
}

function table(result) {
  const head = "<tr><th>engine</th><th>batch</th><th>first run s</th><th>median ms</th><th>images/s</th><th>check</th></tr>";
  $("table").innerHTML = head + result.rows.map((r) =>
    `<tr><td>${r.name}</td><td>${r.batch}</td><td>${r.firstRunS?.toFixed(2) ?? "–"}</td>` +
    `<td>${r.medianMs?.toFixed(1) ?? "–"}</td><td>${r.imagesPerS?.toFixed(3) ?? "–"}</td>` +
    `<td>${r.error ?? r.relVsOurs?.toExponential(1)}</td></tr>`).join("");
}

main().then((result) => {
  window.benchResult = result;
  table(result);
  status("Done.");
  document.body.dataset.state = "done";
}, (err) => {
  window.benchError = String(err?.stack ?? err);
  status(`Failed: ${err?.message ?? err}`);
  document.body.dataset.state = "failed";
});
