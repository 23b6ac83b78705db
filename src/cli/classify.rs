//! `resnet classify`: image files in, top-k labels out.

use super::GpuArgs;
use clap::Args;
use resnet_wgpu::classifier::{Classifier, ClassifierOptions, Model, Prediction};
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::labels::Labels;
use resnet_wgpu::model::Flavour;
use resnet_wgpu::model::load::LoadOptions;
use resnet_wgpu::preprocess::{Preprocess, load_image};
use resnet_wgpu::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Checkpoint (safetensors) in any of the five flavours.
    #[arg(long)]
    weights: PathBuf,
    /// JPEG, PNG, WebP, BMP or GIF files (first frame).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// One label per line (default: ImageNet for 1000/1001 classes, indices otherwise).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Network input side (default: the flavour's, e.g. 224, or 299 for slim).
    #[arg(long)]
    size: Option<usize>,
    /// Resize the shorter side to this, then centre-crop --size.
    #[arg(long, conflicts_with = "no_resize")]
    resize: Option<usize>,
    /// Images already have the input size: only normalise them.
    #[arg(long)]
    no_resize: bool,
    /// Images per GPU submission.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Override the flavour inferred from the tensor names.
    #[arg(long)]
    flavour: Option<String>,
    /// `[{"file", "top": [{"index", "label", "probability"}]}]` (or `"error"`) on stdout.
    #[arg(long)]
    json: bool,
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
    let flavour = args
        .flavour
        .as_deref()
        .map(str::parse::<Flavour>)
        .transpose()?;
    let model = Model::load_with(&args.weights, &LoadOptions { flavour })?;
    let preprocess = Preprocess::for_flavour(model.flavour()).with_overrides(
        args.size,
        args.resize,
        args.no_resize,
    );
    let labels = match &args.labels {
        Some(path) => Labels::from_file(path, model.classes())?,
        None => Labels::for_classes(model.classes()),
    };
    let ctx = GpuContext::new(&args.gpu.choice())?;
    eprintln!("adapter: {}", ctx.summary());
    let batch = args.batch.clamp(1, args.images.len().max(1));
    let classifier = Classifier::with_context(
        &model,
        &ctx,
        &ClassifierOptions {
            max_batch: batch,
            preprocess: Some(preprocess),
            labels: Some(labels),
            ..Default::default()
        },
    )?;
    let mut results: Vec<FileResult> = Vec::with_capacity(args.images.len());
    for files in args.images.chunks(batch) {
        // Decode and preprocess each file on its own so one bad file fails alone.
        let mut input = Vec::new();
        let mut ok = Vec::new();
        for path in files {
            let result = FileResult {
                file: path.display().to_string(),
                top: None,
                error: None,
            };
            match load_image(path).and_then(|img| classifier.preprocess().apply(&img)) {
                Ok(x) => {
                    input.extend(x);
                    ok.push(results.len());
                }
                Err(e) => {
                    results.push(FileResult {
                        error: Some(e.to_string()),
                        ..result
                    });
                    continue;
                }
            }
            results.push(result);
        }
        if ok.is_empty() {
            continue;
        }
        let probs = classifier.probabilities(&input, ok.len())?;
        for (row, &i) in probs.chunks(model.classes()).zip(&ok) {
            results[i].top = Some(classifier.top_k(row, args.top));
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
                (None, None) => unreachable!("every file has a result or an error"),
            }
        }
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
