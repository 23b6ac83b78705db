//! `resnet tune`: times every candidate kernel of each distinct conv shape of a model on this
//! adapter and stores the fastest in the user's cache folder ([`resnet_wgpu::tune`]).

use super::GpuArgs;
use clap::Args;
use resnet_wgpu::Result;
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::plan::Precision;
use resnet_wgpu::tune::{self, TuneOptions};

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// The model and the batch size you will run (choices are stored per shape and batch).
    #[command(flatten)]
    net: super::ModelArgs,
    /// Timed runs per candidate (each layer's fastest counts).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Storage precision to tune for: f32 or f16.
    #[arg(long, default_value = "f32", value_parser = super::parse_precision)]
    precision: Precision,
    /// Print the results without storing them.
    #[arg(long)]
    dry_run: bool,
    /// The report as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    gpu: GpuArgs,
}

pub fn run(args: TuneArgs) -> Result<()> {
    if args.net.batch == 0 || args.repeats == 0 {
        return Err(resnet_wgpu::Error::Input(
            "--batch and --repeats must be at least 1".into(),
        ));
    }
    let (name, net) = args.net.network(0)?;
    let ctx = GpuContext::new(&args.gpu.choice())?;
    eprintln!("adapter: {}", ctx.summary());
    let graph = lower(
        &net.arch,
        &net.params,
        args.net.size,
        args.net.size,
        &LowerOptions::default(),
    )?;
    let opts = TuneOptions {
        precision: args.precision,
        profile: args.gpu.profile()?,
        repeats: args.repeats,
    };
    eprintln!(
        "tuning {name} at batch {}, {}x{} (one session per candidate kernel)…",
        args.net.batch, args.net.size, args.net.size
    );
    let report = tune::tune(&ctx, &graph, args.net.batch, &opts)?;
    // Saved before printing so the report can name the file; a failed save still prints the
    // measurements (nothing lost) and then fails the command.
    let saved = if args.dry_run {
        Ok(None)
    } else {
        tune::save(&report.device, &report.table).map(Some)
    };
    let path = saved.as_ref().ok().cloned().flatten();
    if args.json {
        let mut v = serde_json::to_value(&report).expect("json");
        v["file"] = path.as_ref().map(|p| p.display().to_string()).into();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        let key_w = report.shapes.iter().map(|s| s.key.len()).max().unwrap_or(5);
        println!(
            "{:<key_w$}  {:>6}  {:<26} {:>9}  {:<26} {:>9}  {:>7}",
            "shape", "layers", "heuristic", "ms", "tuned", "ms", "speedup"
        );
        for s in &report.shapes {
            println!(
                "{:<key_w$}  {:>6}  {:<26} {:>9.3}  {:<26} {:>9.3}  {:>6.2}x",
                s.key,
                s.layers,
                s.heuristic,
                s.heuristic_ms,
                s.best,
                s.best_ms,
                s.heuristic_ms / s.best_ms
            );
        }
        println!(
            "whole network, batch {}: heuristic {:.2} ms, tuned {:.2} ms ({:.2}x)",
            args.net.batch,
            report.heuristic_s * 1e3,
            report.tuned_s * 1e3,
            report.heuristic_s / report.tuned_s
        );
        match (&path, args.dry_run) {
            (Some(p), _) => println!("stored in {}", p.display()),
            (None, true) => println!("not stored (--dry-run)"),
            (None, false) => println!("not stored: see the error below"),
        }
    }
    saved.map(|_| ())
}
