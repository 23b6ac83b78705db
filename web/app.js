// The page: picks or drops image files, classifies each with the wasm module (the Rust
// library on WebGPU) and shows its top 5 and the time it took. No framework: the DOM API.
//
// For the browser tests: <body data-state> is "loading", "ready", "busy" or "failed", and
// every finished file's <li class="result"> carries the module's JSON in data-json.
import init, { WebClassifier } from "./pkg/resnet_web.js";

const $ = (id) => document.getElementById(id);
let classifier = null;
// Files are classified one after another, in the order they were given.
let queue = Promise.resolve();

function status(state, text) {
  document.body.dataset.state = state;
  $("status").className = state;
  $("status").textContent = text;
}

// The module calls this when it panics (a bug): its pending promises never settle, so
// the page says so rather than waiting for ever.
window.resnetPanicked = (message) => status("failed", `${message} Reload the page.`);

// A failed request (404, …) is an error naming the file, never its error page's body.
async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

const fetchBytes = async (url) => new Uint8Array(await (await fetchOk(url)).arrayBuffer());
const fetchText = async (url) => (await fetchOk(url)).text();

// Replaces the classifier; `load` returns a promise of the new one.
async function useModel(what, load) {
  status("loading", `Loading ${what}…`);
  classifier?.free();
  classifier = null;
  try {
    classifier = await load();
    status("ready", `${classifier.description} — adapter: ${classifier.adapter}`);
  } catch (e) {
    status("failed", `Cannot load ${what}: ${e.message ?? e}`);
  }
}

function useDigits() {
  // The digits classifier of assets/digits, as in
  // `resnet classify --weights digits.safetensors --labels labels.txt --size 32 --resize 32`.
  return useModel("the digits classifier", async () => {
    const [weights, labels] = await Promise.all([
      fetchBytes("digits/digits.safetensors"),
      fetchText("digits/labels.txt"),
    ]);
    return WebClassifier.load(weights, "digits.safetensors", labels, 32, 32);
  });
}

function number(id) {
  const v = $(id).value.trim();
  return v === "" ? undefined : Number(v);
}

function useCheckpoint() {
  const file = $("weights").files[0];
  if (!file) {
    status("failed", "Pick a checkpoint file first.");
    return;
  }
  const labelsFile = $("labels").files[0];
  return useModel(file.name, async () => {
    const weights = new Uint8Array(await file.arrayBuffer());
    const labels = labelsFile ? await labelsFile.text() : undefined;
    return WebClassifier.load(weights, file.name, labels, number("size"), number("resize"));
  });
}

function render(item, result) {
  const body = item.querySelector(".body");
  body.querySelector(".ms").textContent = `${result.ms.toFixed(1)} ms`;
  if (result.error) {
    item.dataset.state = "error";
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = result.error;
    body.append(p);
  } else {
    item.dataset.state = "ok";
    const table = document.createElement("table");
    for (const p of result.top) {
      const row = table.insertRow();
      row.insertCell().textContent = p.label;
      row.insertCell().textContent = `${(100 * p.probability).toFixed(2)}%`;
      const bar = document.createElement("span");
      bar.style.width = `${Math.max(0.5, 100 * p.probability)}%`;
      const cell = row.insertCell();
      cell.className = "bar";
      cell.append(bar);
    }
    body.append(table);
  }
  item.dataset.json = JSON.stringify(result);
}

async function classifyOne(file) {
  const item = document.createElement("li");
  item.className = "result";
  item.dataset.file = file.name;
  const img = document.createElement("img");
  img.alt = "";
  img.src = URL.createObjectURL(file);
  img.onerror = () => (img.style.visibility = "hidden");
  const body = document.createElement("div");
  body.className = "body";
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = file.name;
  const ms = document.createElement("span");
  ms.className = "ms";
  ms.textContent = "…";
  name.append(ms);
  body.append(name);
  item.append(img, body);
  $("results").append(item);
  try {
    if (!classifier) throw new Error("no model is loaded");
    const bytes = new Uint8Array(await file.arrayBuffer());
    render(item, JSON.parse(await classifier.classify(bytes, file.name)));
  } catch (e) {
    // Only a lost GPU device (or no model) gets here; the file still gets its answer.
    render(item, { file: file.name, error: String(e.message ?? e), ms: 0 });
    if (classifier) status("failed", `${e.message ?? e} Reload the page.`);
  }
}

function classifyFiles(files) {
  for (const file of files) {
    queue = queue.then(async () => {
      document.body.dataset.state = "busy";
      await classifyOne(file);
      if (document.body.dataset.state === "busy") document.body.dataset.state = "ready";
    });
  }
}

$("images").addEventListener("change", (e) => {
  classifyFiles([...e.target.files]);
  e.target.value = "";
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  classifyFiles([...e.dataTransfer.files]);
});
$("load").addEventListener("click", () => {
  queue = queue.then(useCheckpoint);
});
$("digits").addEventListener("click", () => {
  queue = queue.then(useDigits);
});

queue = init()
  .then(useDigits)
  .catch((e) => status("failed", `Cannot start: ${e.message ?? e}`));
