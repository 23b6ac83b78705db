//! Command-line front end: argument parsing and one module per subcommand.

mod bench;
mod classify;
mod infer;
mod info;
mod plan;
mod serve;
mod tune;

use clap::{Args, Parser, Subcommand};
use resnet_wgpu::Result;
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::gpu::{AdapterChoice, Backend};
use resnet_wgpu::model::Flavour;
use resnet_wgpu::model::load::{LoadOptions, Loaded, load};
use resnet_wgpu::plan::tuning::TuningTable;
use resnet_wgpu::plan::{DeviceProfile, PlanFor, Precision};
use std::path::Path;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "resnet",
    version,
    about = "ResNet inference as WGSL compute shaders on wgpu"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Forward-throughput benchmark (TF-slim's time_tensorflow_run), sweeps and profiles.
    Bench(bench::BenchArgs),
    /// Classify image files: top-k labels per image.
    Classify(classify::ClassifyArgs),
    /// Run a checkpoint on a preprocessed input tensor and write the logits.
    Infer(infer::InferArgs),
    /// Print the dispatch list and memory plan of a model (no GPU needed).
    Plan(plan::PlanArgs),
    /// Time the candidate kernels of every conv shape on this adapter and store the fastest
    /// (used by bench, classify and infer from then on; `resnet plan --tuned` shows them).
    Tune(tune::TuneArgs),
    /// List the adapters wgpu finds, with their limits and features (`--json`: the description
    /// `resnet plan --device` reads).
    Info(info::InfoArgs),
    /// Serve checkpoints over HTTP and gRPC (KServe v2 / Triton's protocol) with dynamic
    /// batching: runs
    /// the `resnet-serve` binary built beside this one (`resnet serve --help` for its flags).
    Serve(serve::ServeArgs),
}

/// Adapter selection, shared by every command that touches the GPU.
#[derive(Args, Debug, Clone, Default)]
pub struct GpuArgs {
    /// Backend to use: vulkan, metal, dx12 or gl (default: the first of Vulkan/Metal/DX12).
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
    /// Adapter index (as listed by `resnet info`) or a substring of its name.
    #[arg(long)]
    adapter: Option<String>,
    /// Plan the kernels a `gpu` or a `software` adapter gets, whatever this adapter is (default:
    /// this adapter's own kind, or RESNET_DEVICE_PROFILE).
    #[arg(long, value_parser = parse_plan_for)]
    plan_for: Option<PlanFor>,
    /// Ignore the tuning file `resnet tune` stored for this adapter: the heuristic's kernels.
    #[arg(long)]
    no_tuning: bool,
}

pub(crate) fn parse_plan_for(s: &str) -> std::result::Result<PlanFor, String> {
    s.parse().map_err(|e: resnet_wgpu::Error| e.to_string())
}

fn parse_backend(s: &str) -> std::result::Result<Backend, String> {
    s.parse().map_err(|e: resnet_wgpu::Error| e.to_string())
}

/// `--precision f32|f16`: how activations and weights are stored (f32 arithmetic either way).
fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    s.parse().map_err(|e: resnet_wgpu::Error| e.to_string())
}

impl GpuArgs {
    fn choice(&self) -> AdapterChoice {
        AdapterChoice {
            backend: self.backend,
            adapter: self.adapter.clone(),
        }
    }

    /// The device profile `--plan-for` asks for (with RESNET_CONV_VARIANT / RESNET_WINOGRAD
    /// applied), or `None`: the session's default.
    fn profile(&self) -> resnet_wgpu::Result<Option<DeviceProfile>> {
        self.plan_for
            .map(|k| resnet_wgpu::plan::device::with_env_overrides(k.profile()))
            .transpose()
    }

    /// The tuning table `resnet tune` stored for `ctx` (this profile and precision), unless
    /// `--no-tuning`. A file that cannot be used is reported and ignored: never trusted.
    fn tuning(&self, ctx: &GpuContext, precision: Precision) -> Result<Option<Arc<TuningTable>>> {
        if self.no_tuning {
            return Ok(None);
        }
        let (found, warning) = resnet_wgpu::tune::load_or_warn(ctx, self.profile()?, precision);
        if let Some(w) = warning {
            eprintln!("warning: {w}");
        }
        Ok(found.map(|(path, table)| {
            eprintln!(
                "tuning: {} tuned conv shapes from {}",
                table.len(),
                path.display()
            );
            table
        }))
    }
}

/// The network and batch of `bench`, `plan` and `tune`: a preset with random weights (plans
/// and speed depend on shapes only) or a checkpoint.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A preset (resnet_v2_152, resnet_v2_50, resnet50, ResNet50V2, resnetv2_50, …).
    #[arg(long, default_value = "resnet_v2_152", conflicts_with = "weights")]
    model: String,
    /// A checkpoint instead of a preset's seeded random weights.
    #[arg(long)]
    weights: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Input side (square).
    #[arg(long, default_value_t = 224)]
    size: usize,
}

impl ModelArgs {
    /// The network of `--weights`, else the preset with random weights of `seed`; with its
    /// display name.
    fn network(&self, seed: u64) -> Result<(String, resnet_wgpu::model::Network)> {
        resnet_wgpu::bench::network_or_preset(&self.model, self.weights.as_deref(), seed)
    }
}

/// Loads `--weights` (with `--flavour` if given) and says on stderr what was loaded and what
/// had to be assumed.
fn load_model(weights: &Path, flavour: Option<&str>) -> Result<Loaded> {
    let flavour = flavour.map(str::parse::<Flavour>).transpose()?;
    let loaded = load(weights, &LoadOptions { flavour })?;
    let arch = &loaded.network.arch;
    eprintln!(
        "weights: {} ({}, {} names, ResNet-{}, {} classes)",
        loaded.file.display(),
        loaded.format,
        arch.flavour,
        arch.depth(),
        arch.classes
    );
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    Ok(loaded)
}

/// `started`: when the process started (`bench` reports its setup time from there).
pub fn run(cli: Cli, started: std::time::Instant) -> Result<()> {
    match cli.command {
        Command::Bench(a) => bench::run(a, started),
        Command::Classify(a) => classify::run(a),
        Command::Infer(a) => infer::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Info(a) => info::run(a),
        Command::Tune(a) => tune::run(a),
        Command::Serve(a) => serve::run(a),
    }
}
