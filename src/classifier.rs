//! The embedding API: a checkpoint in, labels out.
//!
//! ```no_run
//! use resnet_wgpu::{Classifier, ClassifierOptions, Model};
//!
//! let model = Model::load("resnet50.safetensors")?;            // flavour inferred
//! let classifier = Classifier::new(&model, &ClassifierOptions::default())?;
//! let image = resnet_wgpu::preprocess::load_image("cat.jpg".as_ref())?;
//! for p in &classifier.classify(&[image], 5)?[0] {
//!     println!("{:>6.2}%  {}", 100.0 * p.probability, p.label);
//! }
//! # Ok::<(), resnet_wgpu::Error>(())
//! ```
//!
//! To share the app's own device (e.g. its renderer's), build a
//! [`GpuContext::from_device`] and use [`Classifier::with_context`]. To keep data on the GPU,
//! reach the session's input and logits buffers and encode the forward pass into your own
//! command encoder through [`Classifier::session`].
//!
//! Async: every call that waits for the GPU has an `_async` form ([`Classifier::new_async`],
//! [`Classifier::logits_async`], [`Classifier::classify_async`], …) running the same code;
//! the blocking forms await it under `pollster`. In the browser (wasm32 with WebGPU) only
//! the async forms exist; load models and images from bytes there ([`Model::from_bytes`],
//! [`crate::preprocess::decode_image`]).
//!
//! Threads: a [`Classifier`] (like its [`Session`]) is `Send + Sync`. Calls from several
//! threads are safe and take turns on the GPU (one activation arena per session); for
//! parallel GPU work create one classifier per thread.

use crate::error::{Error, Result};
use crate::gpu::session::{Output, Session, SessionOptions};
use crate::gpu::{AdapterChoice, GpuContext};
use crate::graph::{LowerOptions, lower};
use crate::labels::Labels;
use crate::model::load::{LoadOptions, Loaded, load, load_bytes};
use crate::model::{Flavour, Network};
use crate::plan::{DeviceProfile, Precision};
use crate::preprocess::Preprocess;
use std::path::Path;

/// A checkpoint, loaded and validated, with the preprocessing and labels its files give.
#[derive(Clone, Debug)]
pub struct Model {
    /// The architecture and its parameters.
    pub network: Network,
    /// The evaluation preprocessing: the flavour's own, or what the checkpoint's files say
    /// (transformers' `preprocessor_config.json`).
    pub preprocess: Preprocess,
    /// Class names the checkpoint's files give (transformers' `id2label`).
    pub labels: Option<Vec<String>>,
    /// What loading had to assume, for the user to see.
    pub notes: Vec<String>,
}

impl From<Network> for Model {
    /// A network with its flavour's preprocessing and no labels.
    fn from(network: Network) -> Model {
        Model {
            preprocess: network.arch.flavour.preprocess(),
            network,
            labels: None,
            notes: Vec::new(),
        }
    }
}

impl From<Loaded> for Model {
    fn from(l: Loaded) -> Model {
        Model {
            network: l.network,
            preprocess: l.preprocess,
            labels: l.labels,
            notes: l.notes,
        }
    }
}

impl Model {
    /// Loads a checkpoint of any flavour (inferred from the tensor names) or format: a
    /// safetensors file (F32, F16 or BF16), a transformers hub folder, an ONNX file.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// As [`Model::load`], e.g. with an explicit flavour.
    pub fn load_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Model> {
        Ok(load(path.as_ref(), opts)?.into())
    }

    /// A checkpoint's bytes already in memory (e.g. a file the user picked in the browser);
    /// `name` is what errors call it.
    pub fn from_bytes(bytes: &[u8], name: &str, opts: &LoadOptions) -> Result<Model> {
        Ok(load_bytes(bytes, Path::new(name), opts)?.into())
    }

    /// The flavour the weights were read as.
    pub fn flavour(&self) -> Flavour {
        self.network.arch.flavour
    }

    /// The evaluation preprocessing `classify` applies by default.
    pub fn preprocess(&self) -> Preprocess {
        self.preprocess
    }

    /// The labels the checkpoint names, else ImageNet's for 1000/1001 classes, else indices.
    pub fn default_labels(&self) -> Labels {
        match &self.labels {
            Some(l) => Labels::from_names(l.clone()),
            None => Labels::for_classes(self.classes()),
        }
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        self.network.arch.classes
    }
}

/// How to build a [`Classifier`].
#[derive(Clone, Debug)]
pub struct ClassifierOptions {
    /// Most images per GPU submission; larger inputs are split.
    pub max_batch: usize,
    /// Input preprocessing; `None`: the model's ([`Model::preprocess`]).
    pub preprocess: Option<Preprocess>,
    /// `None`: the model's ([`Model::default_labels`]): its own, else ImageNet labels for
    /// 1000/1001 classes, else indices.
    pub labels: Option<Labels>,
    /// Which adapter [`Classifier::new`] opens.
    pub adapter: AdapterChoice,
    /// Storage precision of activations and weights (f16 halves the bytes; f32 arithmetic
    /// either way).
    pub precision: Precision,
    /// Also read back every stage's map (`feat/stem_conv` … `feat/pooled`, as `resnet infer
    /// --features` writes them) with each forward pass, for [`Classifier::run`]. They stay
    /// alive in the arena, so this costs GPU memory and read-back time.
    pub features: bool,
    /// Plan another device's kernels ([`SessionOptions::profile`]); `None`: this adapter's.
    pub profile: Option<DeviceProfile>,
    /// Tuned kernel choices ([`crate::tune::load`] reads what `resnet tune` stored for an
    /// adapter); `None`: the plan's heuristic.
    pub tuning: Option<std::sync::Arc<crate::plan::tuning::TuningTable>>,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        ClassifierOptions {
            max_batch: 8,
            preprocess: None,
            labels: None,
            adapter: AdapterChoice::default(),
            precision: Precision::F32,
            features: false,
            profile: None,
            tuning: None,
        }
    }
}

/// `1, 2, 4, ...` below `n`.
fn powers_of_two_below(n: usize) -> Vec<usize> {
    std::iter::successors(Some(1usize), |p| p.checked_mul(2))
        .take_while(|&p| p < n)
        .collect()
}

/// One class of a top-k answer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// The class index (into the logits).
    pub index: usize,
    /// The class's label.
    pub label: String,
    /// Its softmax probability.
    pub probability: f32,
}

/// A model on a device with its preprocessing and labels.
pub struct Classifier {
    session: Session,
    preprocess: Preprocess,
    labels: Labels,
}

impl Classifier {
    /// Opens a device (see [`ClassifierOptions::adapter`]) and builds the session.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(model: &Model, opts: &ClassifierOptions) -> Result<Classifier> {
        pollster::block_on(Self::new_async(model, opts))
    }

    /// As [`Classifier::new`], for async callers; in the browser it opens the page's WebGPU
    /// adapter.
    pub async fn new_async(model: &Model, opts: &ClassifierOptions) -> Result<Classifier> {
        let ctx = GpuContext::new_async(&opts.adapter).await?;
        Self::with_context_async(model, &ctx, opts).await
    }

    /// Builds the session on a device the app already has.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_context(
        model: &Model,
        ctx: &GpuContext,
        opts: &ClassifierOptions,
    ) -> Result<Classifier> {
        pollster::block_on(Self::with_context_async(model, ctx, opts))
    }

    /// As [`Classifier::with_context`], for async callers.
    pub async fn with_context_async(
        model: &Model,
        ctx: &GpuContext,
        opts: &ClassifierOptions,
    ) -> Result<Classifier> {
        let preprocess = opts.preprocess.unwrap_or_else(|| model.preprocess());
        let labels = opts
            .labels
            .clone()
            .unwrap_or_else(|| model.default_labels());
        if labels.len() != model.classes() {
            return Err(Error::Input(format!(
                "{} labels for a model with {} classes",
                labels.len(),
                model.classes()
            )));
        }
        let (h, w) = preprocess.output_size();
        let net = &model.network;
        let lowering = LowerOptions {
            features: opts.features,
        };
        let graph = lower(&net.arch, &net.params, h, w, &lowering)?;
        let session = Session::with_options_async(
            ctx,
            graph,
            opts.max_batch.max(1),
            &SessionOptions {
                precision: opts.precision,
                profile: opts.profile,
                tuning: opts.tuning.clone(),
                // A call with fewer images than `max_batch` runs on the smallest planned size
                // that holds them: powers of two keep its wasted rows under one half.
                batch_sizes: powers_of_two_below(opts.max_batch),
                ..Default::default()
            },
        )
        .await?;
        Ok(Classifier {
            session,
            preprocess,
            labels,
        })
    }

    /// The GPU session: buffers, `encode` into your own encoder, plan, device.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The preprocessing applied to images before the forward pass.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// The labels predictions are named with.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Logits `[n, classes]` of already preprocessed NCHW input.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn logits(&self, input_nchw: &[f32], n: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.logits_async(input_nchw, n))
    }

    /// As [`Classifier::logits`], for async callers.
    pub async fn logits_async(&self, input_nchw: &[f32], n: usize) -> Result<Vec<f32>> {
        Ok(self.run_async(input_nchw, n).await?.logits)
    }

    /// Logits `[n, classes]` of preprocessed NHWC input ([`Preprocess::apply_hwc`] per
    /// image): the session's own layout, no transpose.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn logits_nhwc(&self, input_nhwc: &[f32], n: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.logits_nhwc_async(input_nhwc, n))
    }

    /// As [`Classifier::logits_nhwc`], for async callers.
    pub async fn logits_nhwc_async(&self, input_nhwc: &[f32], n: usize) -> Result<Vec<f32>> {
        Ok(self.session.run_nhwc_async(input_nhwc, n).await?.logits)
    }

    /// Logits and, built with [`ClassifierOptions::features`], every stage's map (NCHW) of
    /// already preprocessed NCHW input.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self, input_nchw: &[f32], n: usize) -> Result<Output> {
        pollster::block_on(self.run_async(input_nchw, n))
    }

    /// As [`Classifier::run`], for async callers.
    pub async fn run_async(&self, input_nchw: &[f32], n: usize) -> Result<Output> {
        self.session.run_nchw_async(input_nchw, n).await
    }

    /// Softmax probabilities `[n, classes]` of already preprocessed NCHW input. An image whose
    /// logits are not all finite (the network overflowed) is an error: its softmax would be
    /// meaningless.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn probabilities(&self, input_nchw: &[f32], n: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.probabilities_async(input_nchw, n))
    }

    /// As [`Classifier::probabilities`], for async callers.
    pub async fn probabilities_async(&self, input_nchw: &[f32], n: usize) -> Result<Vec<f32>> {
        self.softmax_rows(self.logits_async(input_nchw, n).await?)
    }

    /// Each row of `logits` as probabilities; a row not all finite is an error.
    fn softmax_rows(&self, mut logits: Vec<f32>) -> Result<Vec<f32>> {
        for (i, row) in logits.chunks_mut(self.labels.len()).enumerate() {
            check_finite_logits(row, &format!("image {i} of the batch"))?;
            softmax(row);
        }
        Ok(logits)
    }

    /// Preprocesses decoded images and returns the top `k` classes of each.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn classify(&self, images: &[image::RgbImage], k: usize) -> Result<Vec<Vec<Prediction>>> {
        pollster::block_on(self.classify_async(images, k))
    }

    /// As [`Classifier::classify`], for async callers.
    pub async fn classify_async(
        &self,
        images: &[image::RgbImage],
        k: usize,
    ) -> Result<Vec<Vec<Prediction>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = Vec::new();
        for img in images {
            input.extend(self.preprocess.apply_hwc(img)?);
        }
        let probs = self.softmax_rows(self.logits_nhwc_async(&input, images.len()).await?)?;
        Ok(probs
            .chunks(self.labels.len())
            .map(|row| self.top_k(row, k))
            .collect())
    }

    /// The `k` most probable classes of one row of probabilities, best first.
    pub fn top_k(&self, probabilities: &[f32], k: usize) -> Vec<Prediction> {
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        order
            .into_iter()
            .take(k)
            .map(|i| Prediction {
                index: i,
                label: self.labels.get(i).to_string(),
                probability: probabilities[i],
            })
            .collect()
    }
}

/// `Err` naming `image` if its logits hold a NaN or an infinity.
pub fn check_finite_logits(row: &[f32], image: &str) -> Result<()> {
    match row.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(c) => Err(Error::NonFiniteOutput(format!(
            "{image} has logit {} for class {c}; its input or the weights overflow float32",
            row[c]
        ))),
    }
}

/// In-place numerically stable softmax.
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    for v in row.iter_mut() {
        *v = (f64::from(*v) / sum) as f32;
    }
}
