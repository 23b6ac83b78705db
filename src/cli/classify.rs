//! `resnet classify`: image files in, top-k labels out.

use super::GpuArgs;
use clap::Args;
use resnet_wgpu::classifier::{ClassifierOptions, Model, Prediction};
use resnet_wgpu::classify::{ClassifyOptions, Sizing, Source, classify_sources};
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::labels::Labels;
use resnet_wgpu::plan::Precision;
use resnet_wgpu::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

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
    let options = ClassifierOptions {
        max_batch: args.batch.clamp(1, args.images.len().max(1)),
        preprocess: Some(preprocess),
        labels: Some(labels),
        precision: args.precision,
        profile: args.gpu.profile()?,
        tuning: args.gpu.tuning(&ctx, args.precision)?,
        ..Default::default()
    };
    let report = classify_sources(
        &model,
        &ctx,
        &options,
        args.images.iter().cloned().map(Source::Path),
        &ClassifyOptions {
            top: args.top,
            sizing: if own_size { Sizing::Own } else { Sizing::Fixed },
            fail_fast: false,
            lose_device_after: resnet_wgpu::classify::failpoint_device_lost_after(),
        },
    )?;
    let stopped = report.stopped;
    // Consumed, so that `stopped` is left its error's only owner.
    let results: Vec<FileResult> = report
        .outcomes
        .into_iter()
        .map(|o| match o.result {
            Ok(top) => FileResult {
                file: o.name,
                top: Some(top),
                error: None,
            },
            Err(e) => FileResult {
                file: o.name,
                top: None,
                error: Some(e.to_string()),
            },
        })
        .collect();
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
    if let Some(e) = stopped {
        return Err(Arc::try_unwrap(e).unwrap_or_else(|e| Error::Gpu(e.to_string())));
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
