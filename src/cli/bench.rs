//! `resnet bench`: TF-slim's `time_tensorflow_run` experiment (burn-in, timed batches, a line
//! every 10 steps, mean ± sd per batch) on our engine, plus batch sweeps and a per-dispatch
//! GPU profile. The measuring itself is the library's [`resnet_wgpu::bench`], which the Python
//! package's `bench()` shares; this module prints.

use super::GpuArgs;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use resnet_wgpu::bench::{Bench, BenchOptions, BenchResult, Progress, check_batch};
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::gpu::session::Session;
use resnet_wgpu::gpu::timing::Timing;
use resnet_wgpu::plan::Precision;
use resnet_wgpu::plan::op_kind;
use resnet_wgpu::{Error, Result};
use serde::Serialize;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    net: super::ModelArgs,
    /// Burn-in batches (default 10; 1 on a software adapter).
    #[arg(long)]
    warmup: Option<usize>,
    /// Timed batches (default 100; 3 on a software adapter).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed of the random weights and input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Several batch sizes, e.g. `1,8,32`: prints a table.
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<usize>,
    /// With --sweep: CSV instead of a table.
    #[arg(long)]
    csv: bool,
    /// Per-dispatch GPU times (timestamp queries).
    #[arg(long)]
    profile: bool,
    /// One JSON object (or a list, with --sweep) on stdout.
    #[arg(long)]
    json: bool,
    /// Storage precision of activations and weights: f32, or f16 (half the bytes; f32
    /// arithmetic, f32 input and logits).
    #[arg(long, default_value = "f32", value_parser = super::parse_precision)]
    precision: Precision,
    #[command(flatten)]
    gpu: GpuArgs,
}

#[derive(Debug, Serialize)]
struct LayerTime {
    name: String,
    kind: &'static str,
    /// The algorithm and kernel (`resnet plan`'s description).
    kernel: String,
    output_shape: [usize; 4],
    gflop: f64,
    gflop_executed: f64,
    ms: f64,
    percent: f64,
    gflops: f64,
}

/// `started`: when the process started, for `setup_s`.
pub fn run(args: BenchArgs, started: Instant) -> Result<()> {
    let batches = if args.sweep.is_empty() {
        vec![args.net.batch]
    } else {
        args.sweep.clone()
    };
    for &batch in &batches {
        check_batch(batch)?;
    }
    let ctx = GpuContext::new(&args.gpu.choice())?;
    eprintln!("adapter: {}", ctx.summary());
    let tuning = args.gpu.tuning(&ctx, args.precision)?;
    let bench = Bench::with_context(
        ctx,
        &BenchOptions {
            model: args.net.model.clone(),
            weights: args.net.weights.clone(),
            size: args.net.size,
            warmup: args.warmup,
            steps: args.steps,
            seed: args.seed,
            precision: args.precision,
            profile: args.gpu.profile()?,
            tuning,
            started: Some(started),
            ..Default::default()
        },
    )?;
    if bench.defaults_reduced() {
        eprintln!(
            "note: software adapter: defaults reduced to --warmup {} --steps {} \
             (pass them explicitly to override)",
            bench.warmup(),
            bench.steps()
        );
    }
    let mut results = Vec::new();
    for &batch in &batches {
        let session = bench.session(batch)?;
        let r = bench_one(&args, &bench, &session, batch)?;
        if args.profile {
            profile(&args, &bench, &session, batch)?;
        }
        results.push(r);
    }
    if args.json {
        let v = if args.sweep.is_empty() {
            serde_json::to_value(&results[0])
        } else {
            serde_json::to_value(&results)
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&v.expect("json")).expect("json")
        );
    } else if !args.sweep.is_empty() {
        print_sweep(&results, args.csv);
    }
    Ok(())
}

/// One batch size: the header, a progress bar and a line every 10 steps around
/// [`Bench::measure`], then the summary.
fn bench_one(
    args: &BenchArgs,
    bench: &Bench,
    session: &Session,
    batch: usize,
) -> Result<BenchResult> {
    let [_, h, w] = session.input_shape();
    let plan = session.plan();
    let arch = bench.arch();
    let flops_per_image = 2 * session.graph().macs_per_image();
    let quiet = args.json || !args.sweep.is_empty();
    if !quiet {
        println!(
            "model {} ({}, ResNet-{}), batch {batch}, {h}x{w}, {:.2} GFLOP/image, weights {:.1} MiB ({:.1} MiB resident), arena {:.1} MiB{}",
            bench.name(),
            arch.flavour,
            arch.depth(),
            flops_per_image as f64 * 1e-9,
            plan.weights_bytes as f64 / 1048576.0,
            plan.resident_weight_bytes() as f64 / 1048576.0,
            plan.arena_bytes as f64 / 1048576.0,
            if plan.batch < batch {
                format!(
                    ", {} sub-batches of {}",
                    batch.div_ceil(plan.batch),
                    plan.batch
                )
            } else {
                String::new()
            }
        );
    }
    let bar = ProgressBar::new(bench.warmup().saturating_add(bench.steps()) as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("batch {batch}"));
    bar.set_message("burn-in");
    let r = bench.measure(session, batch, |p| {
        if let Progress::Step { index, seconds } = p {
            bar.set_message("timed");
            if !quiet && index % 10 == 0 {
                bar.suspend(|| println!("step {index}, duration = {seconds:.3}"));
            }
        }
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    if !quiet {
        println!(
            "forward across {} steps, {:.3} +/- {:.3} sec / batch",
            r.steps, r.mean_s, r.sd_s
        );
        println!(
            "{:.2} images/s, {:.2} GFLOP/s{}",
            r.images_per_s,
            r.gflops,
            match r.gpu_mean_s {
                Some(g) => format!(", GPU time {g:.3} s / batch"),
                None => ", GPU time n/a (adapter has no timestamp queries)".into(),
            }
        );
    }
    Ok(r)
}

fn profile(args: &BenchArgs, bench: &Bench, session: &Session, batch: usize) -> Result<()> {
    if !session.has_timestamps() {
        return Err(Error::Gpu(
            "--profile needs timestamp queries, which this adapter does not offer (wgpu feature TIMESTAMP_QUERY)"
                .into(),
        ));
    }
    let input = bench.input(session, batch)?;
    let (_, t) = session.run_nchw_timed(&input, batch, Timing::PerDispatch)?;
    let t = t.expect("timestamps checked");
    let graph = session.graph();
    let total: f64 = t.per_dispatch.iter().sum();
    let sub = session.plan().batch as f64;
    let mut rows: Vec<LayerTime> = graph
        .ops
        .iter()
        .zip(&session.plan().steps)
        .zip(&t.per_dispatch)
        .map(|((op, step), &s)| {
            let out = &graph.tensors[op.outputs()[0]];
            // Steps count one sub-batch; the timings sum over all of them.
            let per_batch = batch as f64 / sub;
            let gflop = 2.0 * step.macs as f64 * per_batch * 1e-9;
            let gflop_executed = 2.0 * step.macs_executed as f64 * per_batch * 1e-9;
            LayerTime {
                name: op.name().to_string(),
                kind: op_kind(op),
                kernel: step.conv.map(|c| c.describe()).unwrap_or_default(),
                output_shape: [batch, out.h, out.w, out.c],
                gflop,
                gflop_executed,
                ms: s * 1e3,
                percent: 100.0 * s / total.max(1e-12),
                gflops: if s > 0.0 { gflop / s } else { 0.0 },
            }
        })
        .collect();
    rows.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(());
    }
    let effective = rows.iter().map(|r| r.gflop).sum::<f64>() / total.max(1e-12);
    let executed = rows.iter().map(|r| r.gflop_executed).sum::<f64>() / total.max(1e-12);
    // The best "large" layer: at least 0.1 effective GFLOP per image.
    let best = rows
        .iter()
        .filter(|r| r.gflop >= 0.1 * batch as f64)
        .max_by(|a, b| a.gflops.total_cmp(&b.gflops));
    println!(
        "\nper-step GPU time, batch {batch} (total {:.1} ms, {effective:.2} GFLOP/s effective, \
         {executed:.2} executed)",
        total * 1e3,
    );
    if let Some(b) = best {
        println!(
            "best large layer {} at {:.2} GFLOP/s: the network reaches {:.2} of it",
            b.name,
            b.gflops,
            effective / b.gflops
        );
    }
    println!(
        "{:<28} {:<16} {:<20} {:>9} {:>10} {:>7} {:>9}  kernel",
        "layer", "kind", "output NHWC", "GFLOP", "ms", "%", "GFLOP/s"
    );
    for r in &rows {
        let s = r.output_shape;
        println!(
            "{:<28} {:<16} {:<20} {:>9.3} {:>10.3} {:>7.2} {:>9.2}  {}",
            r.name,
            r.kind,
            format!("{}x{}x{}x{}", s[0], s[1], s[2], s[3]),
            r.gflop,
            r.ms,
            r.percent,
            r.gflops,
            r.kernel
        );
    }
    Ok(())
}

fn print_sweep(results: &[BenchResult], csv: bool) {
    if csv {
        println!("batch,mean_s,sd_s,min_s,max_s,images_per_s,gflops,gpu_mean_s");
        for r in results {
            println!(
                "{},{:.6},{:.6},{:.6},{:.6},{:.3},{:.3},{}",
                r.batch,
                r.mean_s,
                r.sd_s,
                r.min_s,
                r.max_s,
                r.images_per_s,
                r.gflops,
                r.gpu_mean_s.map_or(String::new(), |g| format!("{g:.6}"))
            );
        }
        return;
    }
    println!(
        "{:>6} {:>12} {:>10} {:>12} {:>10} {:>12}",
        "batch", "mean s", "sd s", "images/s", "GFLOP/s", "GPU s"
    );
    for r in results {
        println!(
            "{:>6} {:>12.4} {:>10.4} {:>12.2} {:>10.2} {:>12}",
            r.batch,
            r.mean_s,
            r.sd_s,
            r.images_per_s,
            r.gflops,
            r.gpu_mean_s.map_or("n/a".into(), |g| format!("{g:.4}"))
        );
    }
}
