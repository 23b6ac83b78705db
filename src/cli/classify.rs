//! `resnet classify`: image files in, top-k labels out.

use super::GpuArgs;
use clap::Args;
use resnet_wgpu::classifier::{
    Classifier, ClassifierOptions, Model, Prediction, check_finite_logits, softmax,
};
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::labels::Labels;
use resnet_wgpu::plan::Precision;
use resnet_wgpu::preprocess::{Preprocess, Resize};
use resnet_wgpu::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Checkpoint: safetensors (F32/F16/BF16) in any flavour, a transformers hub folder or an
    /// ONNX file.
    #[arg(long)]
    weights: PathBuf,
    /// JPEG, PNG, WebP, BMP or GIF files (first frame).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// One label per line (default: the checkpoint's own (transformers' id2label), else
    /// ImageNet for 1000/1001 classes, else indices).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Network input side (default: the flavour's, e.g. 224, or 299 for slim).
    #[arg(long)]
    size: Option<usize>,
    /// Resize the shorter side to this, then centre-crop --size.
    #[arg(long, conflicts_with = "no_resize")]
    resize: Option<usize>,
    /// Only normalise the images: each runs at its own size (at least 32x32), or must be
    /// --size x --size when that is given.
    #[arg(long)]
    no_resize: bool,
    /// Images per GPU submission.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Override the flavour inferred from the tensor names (not for ONNX files).
    #[arg(long)]
    flavour: Option<String>,
    /// `[{"file", "top": [{"index", "label", "probability"}]}]` (or `"error"`) on stdout.
    #[arg(long)]
    json: bool,
    /// Storage precision of activations and weights: f32, or f16 (half the bytes; f32
    /// arithmetic, f32 input and logits).
    #[arg(long, default_value = "f32", value_parser = super::parse_precision)]
    precision: Precision,
    #[command(flatten)]
    gpu: GpuArgs,
}

#[derive(Serialize)]
struct FileResult {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    top: Option<Vec<Prediction>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The images of a batch that share an input size.
struct Group {
    size: (usize, usize),
    /// Indices into the command's file list.
    files: Vec<usize>,
    /// Their preprocessed NCHW input.
    input: Vec<f32>,
}

/// Classifiers by input size: one for a fixed size, or (`--no-resize` without `--size`) one per
/// image size seen, the least recently used dropped beyond [`KEPT_SIZES`] (each holds the
/// weights on the GPU).
struct BySize<'a> {
    model: &'a Model,
    ctx: &'a GpuContext,
    options: ClassifierOptions,
    kept: Vec<((usize, usize), Classifier)>,
}

const KEPT_SIZES: usize = 4;

/// `p` without resizing, for an input of `(height, width)`.
fn at_size(p: Preprocess, (height, width): (usize, usize)) -> Preprocess {
    Preprocess {
        resize: Resize::None { height, width },
        ..p
    }
}

impl BySize<'_> {
    fn get(&mut self, size: (usize, usize)) -> Result<&Classifier> {
        match self.kept.iter().position(|(s, _)| *s == size) {
            Some(i) => {
                let c = self.kept.remove(i);
                self.kept.push(c);
            }
            None => {
                // The command preprocesses the images itself: the classifier only needs the
                // input size.
                let opts = ClassifierOptions {
                    preprocess: self.options.preprocess.map(|p| at_size(p, size)),
                    ..self.options.clone()
                };
                let c = Classifier::with_context(self.model, self.ctx, &opts)?;
                if self.kept.len() >= KEPT_SIZES {
                    self.kept.remove(0);
                }
                self.kept.push((size, c));
            }
        }
        Ok(&self.kept.last().expect("just pushed").1)
    }
}

/// The state of a `classify` run: classifiers by size and one result per file.
struct Run<'a> {
    classifiers: BySize<'a>,
    results: &'a mut [FileResult],
    top: usize,
    batches_run: usize,
    lose_device_after: Option<usize>,
    ctx: &'a GpuContext,
}

impl Run<'_> {
    /// Classifies one group of same-size images into `results`. A failure marks the group's
    /// files; only a lost device (nothing more can run) is returned.
    fn classify(&mut self, group: Group) -> Result<()> {
        let outcome = self
            .classifiers
            .get(group.size)
            .and_then(|cl| Ok((cl, cl.logits(&group.input, group.files.len())?)));
        let (classifier, logits) = match outcome {
            Ok(v) => v,
            Err(e) => {
                for &i in &group.files {
                    self.results[i].error = Some(e.to_string());
                }
                return match e {
                    Error::DeviceLost(_) => Err(e),
                    _ => Ok(()),
                };
            }
        };
        let classes = classifier.labels().len();
        for (row, &i) in logits.chunks(classes).zip(&group.files) {
            let mut row = row.to_vec();
            match check_finite_logits(&row, &self.results[i].file) {
                Ok(()) => {
                    softmax(&mut row);
                    self.results[i].top = Some(classifier.top_k(&row, self.top));
                }
                Err(e) => self.results[i].error = Some(e.to_string()),
            }
        }
        self.batches_run += 1;
        if self.lose_device_after == Some(self.batches_run) {
            self.ctx.device.destroy();
        }
        Ok(())
    }
}

pub fn run(args: ClassifyArgs) -> Result<()> {
    if args.top == 0 {
        return Err(Error::Input("--top must be at least 1".into()));
    }
    let model = Model::from(super::load_model(&args.weights, args.flavour.as_deref())?);
    let preprocess = model
        .preprocess()
        .with_overrides(args.size, args.resize, args.no_resize);
    log::info!("preprocessing: {preprocess:?}");
    // `--no-resize` alone: every image at its own size (the engine takes any size >= 32x32).
    let own_size = args.no_resize && args.size.is_none();
    let labels = match &args.labels {
        Some(path) => Labels::from_file(path, model.classes())?,
        None => model.default_labels(),
    };
    let ctx = GpuContext::new(&args.gpu.choice())?;
    eprintln!("adapter: {}", ctx.summary());
    let batch = args.batch.clamp(1, args.images.len().max(1));
    let mut classifiers = BySize {
        model: &model,
        ctx: &ctx,
        options: ClassifierOptions {
            max_batch: batch,
            preprocess: Some(preprocess),
            labels: Some(labels),
            precision: args.precision,
            profile: args.gpu.profile()?,
            tuning: args.gpu.tuning(&ctx, args.precision)?,
            ..Default::default()
        },
        kept: Vec::new(),
    };
    if !own_size {
        // A fixed size: a model that cannot run at all fails here, before any file is read.
        classifiers.get(preprocess.output_size())?;
    }
    let mut results: Vec<FileResult> = args
        .images
        .iter()
        .map(|path| FileResult {
            file: path.display().to_string(),
            top: None,
            error: None,
        })
        .collect();
    let lose_device_after = failpoint_device_lost_after();
    let mut run = Run {
        classifiers,
        results: &mut results,
        top: args.top,
        batches_run: 0,
        lose_device_after,
        ctx: &ctx,
    };
    // Decode and preprocess each file on its own so one bad file fails alone; queue the good
    // ones by input size and run a size's queue whenever it holds a whole batch (and every
    // queue at the end), so that images of one size share batches across the whole run.
    let mut queues: Vec<Group> = Vec::new();
    let mut fatal = None;
    for (i, path) in args.images.iter().enumerate() {
        let input = preprocess.load(path).and_then(|img| {
            if own_size {
                let size = (img.height() as usize, img.width() as usize);
                Ok((size, at_size(preprocess, size).apply(&img)?))
            } else {
                Ok((preprocess.output_size(), preprocess.apply(&img)?))
            }
        });
        let (size, x) = match input {
            Ok(v) => v,
            Err(e) => {
                run.results[i].error = Some(e.to_string());
                continue;
            }
        };
        let q = match queues.iter().position(|g| g.size == size) {
            Some(q) => q,
            None => {
                queues.push(Group {
                    size,
                    files: Vec::new(),
                    input: Vec::new(),
                });
                queues.len() - 1
            }
        };
        queues[q].files.push(i);
        queues[q].input.extend(x);
        if queues[q].files.len() == batch
            && let Err(e) = run.classify(queues.swap_remove(q))
        {
            fatal = Some(e);
            break;
        }
    }
    if fatal.is_none() {
        queues.sort_by_key(|g| g.size);
        for g in queues {
            if let Err(e) = run.classify(g) {
                fatal = Some(e);
                break;
            }
        }
    }
    if let Some(e) = &fatal {
        for r in results
            .iter_mut()
            .filter(|r| r.top.is_none() && r.error.is_none())
        {
            r.error = Some(format!("not classified: {e}"));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results).expect("json"));
    } else {
        for r in &results {
            println!("{}", r.file);
            match (&r.top, &r.error) {
                (Some(top), _) => {
                    for (rank, p) in top.iter().enumerate() {
                        println!(
                            "  {}. {:>6.2}%  {} (class {})",
                            rank + 1,
                            100.0 * p.probability,
                            p.label,
                            p.index
                        );
                    }
                }
                (None, Some(e)) => println!("  error: {e}"),
                (None, None) => println!("  error: not classified"),
            }
        }
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        return Err(Error::Input(format!(
            "{failed} of {} images could not be classified",
            results.len()
        )));
    }
    Ok(())
}

/// Test hook: `RESNET_FAILPOINT=device-lost-after-batches:N` destroys the GPU device after N
/// batches, so that a test can see what a lost device does to a run (it cannot be provoked from
/// outside the process).
fn failpoint_device_lost_after() -> Option<usize> {
    std::env::var("RESNET_FAILPOINT")
        .ok()?
        .strip_prefix("device-lost-after-batches:")?
        .parse()
        .ok()
}
