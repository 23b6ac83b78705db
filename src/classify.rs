//! The classify service: many images in (paths, encoded bytes, decoded pixels), one outcome
//! per image out, in input order. `resnet classify` and the Python package's `classify` both
//! run it.
//!
//! Each image is decoded and preprocessed on its own, so a bad one fails alone and keeps its
//! error; the good ones are queued by input size and a size's queue runs whenever it holds a
//! whole batch (and every queue at the end), so images of one size share batches across the
//! whole run. A lost device stops the run: what was classified is kept, and the images not yet
//! run say so ([`Error::NotClassified`]).
//!
//! ```no_run
//! use resnet_wgpu::classify::{ClassifyOptions, Source, classify_sources};
//! use resnet_wgpu::gpu::{AdapterChoice, GpuContext};
//! use resnet_wgpu::{ClassifierOptions, Model};
//!
//! let model = Model::load("resnet50.safetensors")?;
//! let ctx = GpuContext::new(&AdapterChoice::default())?;
//! let sources = ["cat.jpg", "dog.png"].map(|f| Source::Path(f.into()));
//! let report = classify_sources(
//!     &model,
//!     &ctx,
//!     &ClassifierOptions::default(),
//!     sources,
//!     &ClassifyOptions::default(),
//! )?;
//! for o in &report.outcomes {
//!     match &o.result {
//!         Ok(top) => println!("{}: {}", o.name, top[0].label),
//!         Err(e) => println!("{}: {e}", o.name),
//!     }
//! }
//! # Ok::<(), resnet_wgpu::Error>(())
//! ```

use crate::classifier::{Classifier, Prediction};
#[cfg(not(target_arch = "wasm32"))]
use crate::classifier::{ClassifierOptions, Model};
use crate::classifier::{check_finite_logits, softmax};
use crate::error::{Error, Result};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::GpuContext;
use crate::preprocess::{Alpha, Preprocess, Resize, decode_image_with, load_image_with, to_rgb};
use std::path::PathBuf;
use std::sync::Arc;

/// One image to classify.
#[derive(Clone, Debug)]
pub enum Source {
    /// An image file (JPEG, PNG, WebP, BMP, GIF).
    Path(PathBuf),
    /// An encoded image already in memory; `name` is what errors call it.
    Bytes {
        /// What errors and outcomes call the image.
        name: String,
        /// The file's bytes.
        bytes: Vec<u8>,
    },
    /// Decoded pixels (converted to RGB as a decoded file is).
    Image {
        /// What errors and outcomes call the image.
        name: String,
        /// The pixels.
        image: image::DynamicImage,
    },
}

impl Source {
    /// What errors and outcomes call this image: a path as given, else its name.
    pub fn name(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Bytes { name, .. } | Source::Image { name, .. } => name.clone(),
        }
    }

    /// RGB8 as the preprocessing wants it: Pillow's `.convert("RGB")`, or with `alpha`
    /// composited onto white.
    pub fn decode(self, alpha: Alpha) -> Result<image::RgbImage> {
        match self {
            Source::Path(p) => load_image_with(&p, alpha),
            Source::Bytes { name, bytes } => decode_image_with(&bytes, &name, alpha),
            Source::Image { image, .. } => Ok(to_rgb(image, alpha)),
        }
    }
}

/// Which input size an image runs at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sizing {
    /// Every image preprocessed to the preprocessing's output size.
    #[default]
    Fixed,
    /// Every image at its own size, only normalised (`resnet classify --no-resize` without
    /// `--size`): the engine takes any size of at least 32x32, one classifier per size.
    Own,
}

/// How [`classify_sources`] runs.
#[derive(Clone, Copy, Debug)]
pub struct ClassifyOptions {
    /// Classes per image, best first (at least 1).
    pub top: usize,
    /// Input size per image.
    pub sizing: Sizing,
    /// The first image that cannot be decoded or preprocessed ends the call with its error,
    /// before any GPU work (otherwise it fails alone and the rest still run).
    pub fail_fast: bool,
    /// Test hook: destroy the device after this many batches, to see what a lost device does
    /// to a run (`resnet classify` reads it from `RESNET_FAILPOINT`).
    pub lose_device_after: Option<usize>,
}

impl Default for ClassifyOptions {
    fn default() -> Self {
        ClassifyOptions {
            top: 5,
            sizing: Sizing::Fixed,
            fail_fast: false,
            lose_device_after: None,
        }
    }
}

/// One image's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// [`Source::name`].
    pub name: String,
    /// Its top classes, or why it has none (one error may be shared by the images of a batch
    /// that failed together).
    pub result: std::result::Result<Vec<Prediction>, Arc<Error>>,
}

/// What a run gives: one outcome per source, in input order.
#[derive(Debug)]
pub struct Report {
    /// Per source, in input order.
    pub outcomes: Vec<Outcome>,
    /// The error that stopped the run (a lost device), if one did; the images it left are
    /// [`Error::NotClassified`].
    pub stopped: Option<Arc<Error>>,
}

impl Report {
    /// How many images have no classes.
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_err()).count()
    }
}

/// `p` without resizing, for an input of `(height, width)`.
pub fn at_size(p: Preprocess, (height, width): (usize, usize)) -> Preprocess {
    Preprocess {
        resize: Resize::None { height, width },
        ..p
    }
}

/// Classifiers by input size for one model on one device: built on first use, the least
/// recently used dropped beyond [`Classifiers::KEPT`] (each holds the weights on the GPU).
#[cfg(not(target_arch = "wasm32"))]
pub struct Classifiers<'a> {
    model: &'a Model,
    ctx: &'a GpuContext,
    options: ClassifierOptions,
    kept: Vec<((usize, usize), Arc<Classifier>)>,
}

#[cfg(not(target_arch = "wasm32"))]
impl<'a> Classifiers<'a> {
    /// Sizes kept at once.
    pub const KEPT: usize = 4;

    /// None built yet; each is built with `options`, its preprocessing set to its size.
    pub fn new(model: &'a Model, ctx: &'a GpuContext, options: &ClassifierOptions) -> Self {
        Classifiers {
            model,
            ctx,
            options: options.clone(),
            kept: Vec::new(),
        }
    }

    /// The preprocessing the classifiers start from (the options', else the model's).
    pub fn preprocess(&self) -> Preprocess {
        self.options
            .preprocess
            .unwrap_or_else(|| self.model.preprocess())
    }

    /// The classifier for inputs of `size`, built on first use.
    pub fn get(&mut self, size: (usize, usize)) -> Result<Arc<Classifier>> {
        match self.kept.iter().position(|(s, _)| *s == size) {
            Some(i) => {
                let c = self.kept.remove(i);
                self.kept.push(c);
            }
            None => {
                // The service preprocesses the images itself: a classifier only needs the
                // input size.
                let opts = ClassifierOptions {
                    preprocess: Some(at_size(self.preprocess(), size)),
                    ..self.options.clone()
                };
                let c = Classifier::with_context(self.model, self.ctx, &opts)?;
                if self.kept.len() >= Self::KEPT {
                    self.kept.remove(0);
                }
                self.kept.push((size, Arc::new(c)));
            }
        }
        Ok(self.kept.last().expect("just pushed").1.clone())
    }
}

/// Classifies `sources` with `model` on `ctx` (classifiers built with `options`; its
/// `max_batch` images per submission, its preprocessing or else the model's). With
/// [`Sizing::Fixed`] a model that cannot run at all fails here, before any image is read.
#[cfg(not(target_arch = "wasm32"))]
pub fn classify_sources(
    model: &Model,
    ctx: &GpuContext,
    options: &ClassifierOptions,
    sources: impl IntoIterator<Item = Source>,
    opts: &ClassifyOptions,
) -> Result<Report> {
    let mut classifiers = Classifiers::new(model, ctx, options);
    let preprocess = classifiers.preprocess();
    if opts.sizing == Sizing::Fixed {
        classifiers.get(preprocess.output_size())?;
    }
    classify_with(
        |size| classifiers.get(size),
        preprocess,
        options.max_batch,
        sources,
        opts,
    )
}

/// One image's result once it has one.
type Slot = Option<std::result::Result<Vec<Prediction>, Arc<Error>>>;

/// The images of a batch that share an input size.
struct Group {
    size: (usize, usize),
    /// Indices into the outcomes.
    items: Vec<usize>,
    /// Their preprocessed NHWC input (the session's layout).
    input: Vec<f32>,
}

/// [`classify_sources`] with the caller's classifiers: `classifier_for(size)` gives the one
/// for inputs of `size` (e.g. from a cache kept across calls); `preprocess` is applied to
/// every image ([`Sizing::Own`]: at the image's own size); `batch` images per submission.
#[cfg(not(target_arch = "wasm32"))]
pub fn classify_with(
    classifier_for: impl FnMut((usize, usize)) -> Result<Arc<Classifier>>,
    preprocess: Preprocess,
    batch: usize,
    sources: impl IntoIterator<Item = Source>,
    opts: &ClassifyOptions,
) -> Result<Report> {
    pollster::block_on(classify_with_async(
        classifier_for,
        preprocess,
        batch,
        sources,
        opts,
    ))
}

/// As [`classify_with`], for async callers (the browser page: the only form there).
pub async fn classify_with_async(
    mut classifier_for: impl FnMut((usize, usize)) -> Result<Arc<Classifier>>,
    preprocess: Preprocess,
    batch: usize,
    sources: impl IntoIterator<Item = Source>,
    opts: &ClassifyOptions,
) -> Result<Report> {
    if opts.top == 0 {
        return Err(Error::Input("top must be at least 1".into()));
    }
    let batch = batch.max(1);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut runs = Runs {
        pending: Vec::new(),
        batches_run: 0,
        opts: *opts,
    };
    let mut stopped: Option<Arc<Error>> = None;
    let mut queues: Vec<Group> = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        outcomes.push(Outcome {
            name: source.name(),
            result: Ok(Vec::new()),
        });
        runs.pending.push(None);
        if stopped.is_some() {
            continue;
        }
        let input = source.decode(preprocess.alpha).and_then(|img| {
            if opts.sizing == Sizing::Own {
                let size = (img.height() as usize, img.width() as usize);
                Ok((size, at_size(preprocess, size).apply_hwc(&img)?))
            } else {
                Ok((preprocess.output_size(), preprocess.apply_hwc(&img)?))
            }
        });
        let (size, x) = match input {
            Ok(v) => v,
            Err(e) if opts.fail_fast => return Err(e),
            Err(e) => {
                runs.pending[i] = Some(Err(Arc::new(e)));
                continue;
            }
        };
        let q = match queues.iter().position(|g| g.size == size) {
            Some(q) => q,
            None => {
                queues.push(Group {
                    size,
                    items: Vec::new(),
                    input: Vec::new(),
                });
                queues.len() - 1
            }
        };
        queues[q].items.push(i);
        queues[q].input.extend(x);
        // Fail fast: nothing runs before every image is known to be good.
        if !opts.fail_fast && queues[q].items.len() == batch {
            let group = queues.swap_remove(q);
            let cl = classifier_for(group.size);
            stopped = runs.run(cl, group, &outcomes).await;
        }
    }
    if stopped.is_none() {
        queues.sort_by_key(|g| g.size);
        'groups: for g in queues {
            let per_image = g.input.len() / g.items.len();
            for (items, input) in g.items.chunks(batch).zip(g.input.chunks(batch * per_image)) {
                let chunk = Group {
                    size: g.size,
                    items: items.to_vec(),
                    input: input.to_vec(),
                };
                let cl = classifier_for(chunk.size);
                stopped = runs.run(cl, chunk, &outcomes).await;
                if stopped.is_some() {
                    break 'groups;
                }
            }
        }
    }
    for (o, p) in outcomes.iter_mut().zip(runs.pending) {
        o.result = match (p, &stopped) {
            (Some(r), _) => r,
            (None, Some(e)) => Err(Arc::new(Error::NotClassified(e.to_string()))),
            (None, None) => Err(Arc::new(Error::NotClassified("no result".into()))),
        };
    }
    Ok(Report { outcomes, stopped })
}

/// The results so far of a [`classify_with_async`] run.
struct Runs {
    /// Per source: its result once it has one.
    pending: Vec<Slot>,
    batches_run: usize,
    opts: ClassifyOptions,
}

impl Runs {
    /// Runs one group on `classifier` into `pending`. A failure marks the group's images;
    /// only a lost device (nothing more can run) is returned.
    async fn run(
        &mut self,
        classifier: Result<Arc<Classifier>>,
        group: Group,
        names: &[Outcome],
    ) -> Option<Arc<Error>> {
        let outcome = match classifier {
            Ok(cl) => cl
                .logits_nhwc_async(&group.input, group.items.len())
                .await
                .map(|logits| (logits, cl)),
            Err(e) => Err(e),
        };
        let (logits, classifier) = match outcome {
            Ok(v) => v,
            Err(e) => {
                let lost = matches!(e, Error::DeviceLost(_));
                let e = Arc::new(e);
                for &i in &group.items {
                    self.pending[i] = Some(Err(e.clone()));
                }
                return lost.then_some(e);
            }
        };
        let classes = classifier.labels().len();
        for (row, &i) in logits.chunks(classes).zip(&group.items) {
            let mut row = row.to_vec();
            self.pending[i] = Some(match check_finite_logits(&row, &names[i].name) {
                Ok(()) => {
                    softmax(&mut row);
                    Ok(classifier.top_k(&row, self.opts.top))
                }
                Err(e) => Err(Arc::new(e)),
            });
        }
        self.batches_run += 1;
        if self.opts.lose_device_after == Some(self.batches_run) {
            classifier.session().context().device.destroy();
        }
        None
    }
}

/// Test hook of `resnet classify` and `resnet-serve`: `RESNET_FAILPOINT=device-lost-after-batches:N`
/// destroys the GPU device after the N-th forward pass, so that a test can see what a lost
/// device does to a run (it cannot be provoked from outside the process). `None` when unset.
#[doc(hidden)]
pub fn failpoint_device_lost_after() -> Option<usize> {
    std::env::var("RESNET_FAILPOINT")
        .ok()?
        .strip_prefix("device-lost-after-batches:")?
        .parse()
        .ok()
}
