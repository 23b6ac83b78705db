//! The wasm-bindgen face of the library for `web/app.js`.
//!
//! Everything here is glue: the checkpoint, labels and images arrive as bytes and text, the
//! work is the library's ([`Model::from_bytes`], [`Preprocess::decode`],
//! [`Classifier::classify_async`]), errors become JavaScript `Error`s carrying the library's
//! messages, and a file that fails is an answer (`error`), not an exception, so that the
//! page carries on with the other files.

use crate::FileResult;
use resnet_wgpu::classify::{ClassifyOptions, Source, classify_with_async};
use resnet_wgpu::gpu::session::{Session, SessionOptions};
use resnet_wgpu::gpu::timing::Timing;
use resnet_wgpu::gpu::{AdapterChoice, GpuContext};
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::labels::Labels;
use resnet_wgpu::model::load::LoadOptions;
#[cfg(doc)]
use resnet_wgpu::preprocess::Preprocess;
use resnet_wgpu::{Classifier, ClassifierOptions, Error, Model};
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// How many classes the page shows per image, as `resnet classify` prints by default.
const TOP: usize = 5;

/// Milliseconds from the page's own clock (`performance.now()`; `std::time::Instant` does
/// not exist on wasm32-unknown-unknown).
fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
        .ok()
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &JsValue::from_str("now")).ok()?;
            now.dyn_into::<js_sys::Function>().ok()?.call0(&p).ok()
        })
        .and_then(|v| v.as_f64())
        .unwrap_or_else(js_sys::Date::now)
}

fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

/// A panic aborts the module and leaves its promise pending forever; say why on the console
/// (the default is a bare "unreachable") and to the page's `resnetPanicked(message)` if it
/// defines one, so that the page shows the failure instead of "Loading…" for ever.
fn log_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = JsValue::from_str(&format!("resnet-web: {info}"));
            web_sys::console::error_1(&message);
            let global = js_sys::global();
            if let Ok(f) = js_sys::Reflect::get(&global, &JsValue::from_str("resnetPanicked"))
                .and_then(|f| f.dyn_into::<js_sys::Function>())
            {
                let _ = f.call1(&global, &message);
            }
        }));
    });
}

/// The adapter as far as the browser tells: WebGPU hides names and drivers unless the page
/// asks for them, and "(BrowserWebGpu, Cpu, driver  )" says nothing.
fn describe_adapter(s: &resnet_wgpu::gpu::context::AdapterSummary) -> String {
    let known: Vec<&str> = [s.name.as_str(), s.driver.as_str(), s.driver_info.as_str()]
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .collect();
    let kind = format!("WebGPU, {} device", s.device_type);
    if known.is_empty() {
        kind
    } else {
        format!("{} ({kind})", known.join(" "))
    }
}

/// A checkpoint on the browser's WebGPU device with its preprocessing and labels.
#[wasm_bindgen]
pub struct WebClassifier {
    classifier: Arc<Classifier>,
    adapter: String,
    description: String,
}

#[wasm_bindgen]
impl WebClassifier {
    /// Loads a checkpoint from its bytes (`name`: the file name, for messages), opens WebGPU
    /// and builds the session. `labels`: the text of a labels file (one per line; `None`:
    /// ImageNet for 1000/1001 classes, indices otherwise). `size` and `resize` are the CLI's
    /// `--size` and `--resize` (`None`: the flavour's own preprocessing).
    pub async fn load(
        weights: Vec<u8>,
        name: String,
        labels: Option<String>,
        size: Option<u32>,
        resize: Option<u32>,
    ) -> Result<WebClassifier, JsError> {
        log_panics();
        let model =
            Model::from_bytes(&weights, &name, &LoadOptions::default()).map_err(js_error)?;
        drop(weights);
        // As `resnet classify`: the labels file, else the checkpoint's own, else ImageNet's
        // for 1000/1001 classes, else indices; the checkpoint's preprocessing with --size
        // and --resize.
        let labels = match labels {
            Some(text) => Labels::from_text(&text, model.classes(), "the labels file"),
            None => Ok(model.default_labels()),
        }
        .map_err(js_error)?;
        let preprocess = model.preprocess().with_overrides(
            size.map(|s| s as usize),
            resize.map(|r| r as usize),
            false,
        );
        let (h, w) = preprocess.output_size();
        let description = format!(
            "{name}: {} ResNet, {} classes, input {h}x{w}",
            model.flavour(),
            model.classes()
        );
        // One image per submission: the page classifies each file as it comes.
        let opts = ClassifierOptions {
            max_batch: 1,
            preprocess: Some(preprocess),
            labels: Some(labels),
            ..Default::default()
        };
        let classifier = Classifier::new_async(&model, &opts)
            .await
            .map_err(js_error)?;
        let adapter = describe_adapter(&classifier.session().context().summary());
        // An Arc because the library's classify service shares classifiers that way (across
        // threads natively); in the browser there is one thread and wgpu's types are not Send.
        #[allow(clippy::arc_with_non_send_sync)]
        let classifier = Arc::new(classifier);
        Ok(WebClassifier {
            classifier,
            adapter,
            description,
        })
    }

    /// The WebGPU adapter, as the CLI logs it.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Flavour, classes and input size.
    #[wasm_bindgen(getter)]
    pub fn description(&self) -> String {
        self.description.clone()
    }

    /// Classifies one image file's bytes; resolves with the JSON of one entry of
    /// `resnet classify --json` (`{"file", "top": [{"index", "label", "probability"}]}` or
    /// `{"file", "error"}`) plus `"ms"`, the time it took. It rejects only when the GPU can no
    /// longer run anything (a lost device): then the page needs a new classifier.
    pub fn classify(&self, bytes: Vec<u8>, name: String) -> js_sys::Promise {
        let classifier = Arc::clone(&self.classifier);
        wasm_bindgen_futures::future_to_promise(async move {
            let start = now_ms();
            // The library's classify service, as `resnet classify` and Python run it: decode,
            // preprocess, run, softmax and top k, a bad file kept with its error.
            let opts = ClassifyOptions {
                top: TOP,
                ..Default::default()
            };
            let source = Source::Bytes {
                name: name.clone(),
                bytes,
            };
            let preprocess = *classifier.preprocess();
            let report =
                classify_with_async(|_| Ok(classifier.clone()), preprocess, 1, [source], &opts)
                    .await
                    .map_err(js_error)?;
            let ms = now_ms() - start;
            if let Some(e) = report.stopped {
                return Err(JsError::new(&e.to_string()).into());
            }
            let outcome = report.outcomes.into_iter().next().map(|o| o.result);
            let (top, error) = match outcome {
                Some(Ok(top)) => (Some(top), None),
                Some(Err(e)) if matches!(*e, Error::DeviceLost(_)) => {
                    return Err(JsError::new(&e.to_string()).into());
                }
                Some(Err(e)) => (None, Some(e.to_string())),
                None => (None, Some("no result".to_string())),
            };
            let result = FileResult {
                file: name,
                top,
                error,
                ms,
            };
            let json = serde_json::to_string(&result)
                .map_err(|e| JsError::new(&format!("serialising the result: {e}")))?;
            Ok(JsValue::from_str(&json))
        })
    }
}

/// A checkpoint's network on the browser's WebGPU device, logits in and out: the browser peer
/// benchmark's engine (`peer/web/`), timed against other engines on the same preprocessed
/// input, so no decoding, preprocessing or softmax. One session of exactly `batch` images (a
/// [`Classifier`] would also plan the smaller powers of two, which a peer does not build).
#[wasm_bindgen]
pub struct WebLogits {
    // An Rc so that a method's promise owns what it runs on (a promise cannot borrow `self`).
    session: Rc<Session>,
    batch: usize,
    adapter: String,
}

#[wasm_bindgen]
impl WebLogits {
    /// Loads a checkpoint from its bytes (`name`: the file name, whose extension picks the
    /// format, e.g. `resnet50.onnx`), opens WebGPU and builds a session for `batch` images of
    /// `size` x `size`: everything before the first forward pass.
    pub async fn load(
        weights: Vec<u8>,
        name: String,
        batch: u32,
        size: u32,
    ) -> Result<WebLogits, JsError> {
        log_panics();
        let model =
            Model::from_bytes(&weights, &name, &LoadOptions::default()).map_err(js_error)?;
        drop(weights);
        let (size, batch) = (size as usize, batch.max(1) as usize);
        let net = &model.network;
        let graph = lower(&net.arch, &net.params, size, size, &LowerOptions::default())
            .map_err(js_error)?;
        let ctx = GpuContext::new_async(&AdapterChoice::default())
            .await
            .map_err(js_error)?;
        let session = Session::with_options_async(&ctx, graph, batch, &SessionOptions::default())
            .await
            .map_err(js_error)?;
        let adapter = describe_adapter(&ctx.summary());
        Ok(WebLogits {
            session: Rc::new(session),
            batch,
            adapter,
        })
    }

    /// The WebGPU adapter, as the CLI logs it.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Logits `[batch, classes]` (a `Float32Array`) of `batch` preprocessed NCHW images:
    /// upload, the forward pass and the read-back, as a peer engine's run from and to CPU
    /// memory.
    pub fn logits(&self, input_nchw: Vec<f32>) -> js_sys::Promise {
        let (session, n) = (Rc::clone(&self.session), self.batch);
        wasm_bindgen_futures::future_to_promise(async move {
            let out = session
                .run_nchw_async(&input_nchw, n)
                .await
                .map_err(js_error)?;
            Ok(js_sys::Float32Array::from(out.logits.as_slice()).into())
        })
    }

    /// One forward pass with a timestamp pair around every dispatch (`resnet bench --profile`
    /// in the browser): resolves with the JSON list `[{"name", "kernel", "ms"}]` in plan order,
    /// or rejects where the adapter has no timestamp queries.
    pub fn profile(&self, input_nchw: Vec<f32>) -> js_sys::Promise {
        let (session, n) = (Rc::clone(&self.session), self.batch);
        wasm_bindgen_futures::future_to_promise(async move {
            if !session.has_timestamps() {
                return Err(JsError::new(
                    "this WebGPU adapter offers no timestamp queries (Chromium: \
                     --enable-dawn-features=allow_unsafe_apis)",
                )
                .into());
            }
            let (_, t) = session
                .run_nchw_timed_async(&input_nchw, n, Timing::PerDispatch)
                .await
                .map_err(js_error)?;
            let per_dispatch = t.map(|t| t.per_dispatch).unwrap_or_default();
            let rows: Vec<serde_json::Value> = session
                .graph()
                .ops
                .iter()
                .zip(&session.plan().steps)
                .zip(&per_dispatch)
                .map(|((op, step), s)| {
                    serde_json::json!({
                        "name": op.name(),
                        "kernel": step.conv.map(|c| c.describe()).unwrap_or_default(),
                        "ms": s * 1e3,
                    })
                })
                .collect();
            Ok(JsValue::from_str(
                &serde_json::Value::from(rows).to_string(),
            ))
        })
    }
}
