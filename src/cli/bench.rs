//! `resnet bench`: TF-slim's `time_tensorflow_run` experiment (burn-in, timed batches, a line
//! every 10 steps, mean ± sd per batch) on our engine, plus batch sweeps and a per-dispatch
//! GPU profile.

use super::GpuArgs;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::gpu::context::AdapterSummary;
use resnet_wgpu::gpu::session::{Session, SessionOptions};
use resnet_wgpu::gpu::timing::Timing;
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::model::Arch;
use resnet_wgpu::model::random::random_input;
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

/// One batch size's figures.
#[derive(Debug, Serialize)]
struct BenchResult {
    model: String,
    batch: usize,
    size: usize,
    warmup: usize,
    steps: usize,
    /// Process start to this batch size's session ready (context, weights, plan, pipelines):
    /// what a user waits before the first batch can run.
    setup_s: f64,
    /// Wall time of the first batch on the session: on a cold driver cache it includes the
    /// shader compiles that drivers (lavapipe among them) defer to the first dispatch.
    first_batch_s: f64,
    mean_s: f64,
    sd_s: f64,
    min_s: f64,
    max_s: f64,
    images_per_s: f64,
    precision: &'static str,
    /// 2 x the direct convolution's multiply-adds: "effective" FLOPs, as cuDNN and ncnn count.
    flops_per_image: u64,
    /// 2 x the multiply-adds the kernels execute (Winograd's GEMMs do fewer).
    flops_executed_per_image: u64,
    /// Effective GFLOP/s.
    gflops: f64,
    gpu_mean_s: Option<f64>,
    weights_bytes: u64,
    arena_bytes: u64,
    adapter: AdapterSummary,
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

/// The benchmark's input batch, or a clear error where the host cannot hold it (the GPU
/// session runs any batch as sub-batches, but the whole batch's input lives in memory).
fn bench_input(session: &Session, batch: usize, seed: u64) -> Result<Vec<f32>> {
    let [c, h, w] = session.input_shape();
    let len = batch.checked_mul(c * h * w);
    let fits = len.is_some_and(|len| Vec::<f32>::new().try_reserve_exact(len).is_ok());
    match len {
        Some(len) if fits => Ok(random_input(len, seed ^ 0x5EED)),
        _ => Err(Error::Input(format!(
            "a batch of {batch} images of {c}x{h}x{w} needs {:.1} GiB of host memory for its \
             input, more than this machine can allocate; use a smaller --batch",
            batch as f64 * (c * h * w * 4) as f64 / (1u64 << 30) as f64
        ))),
    }
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    // As time_tensorflow_run: sd = sqrt(E[x^2] - E[x]^2).
    let var = (xs.iter().map(|x| x * x).sum::<f64>() / n - mean * mean).max(0.0);
    (mean, var.sqrt())
}

/// `started`: when the process started, for `setup_s`.
pub fn run(args: BenchArgs, started: Instant) -> Result<()> {
    let ctx = GpuContext::new(&args.gpu.choice())?;
    let adapter = ctx.summary();
    eprintln!("adapter: {adapter}");
    let software = ctx.is_software();
    if args.steps == Some(0) {
        return Err(Error::Input(
            "--steps 0 would time nothing: give at least 1 (use --warmup for untimed batches)"
                .into(),
        ));
    }
    let warmup = args.warmup.unwrap_or(if software { 1 } else { 10 });
    let steps = args.steps.unwrap_or(if software { 3 } else { 100 });
    if software && (args.warmup.is_none() || args.steps.is_none()) {
        eprintln!(
            "note: software adapter: defaults reduced to --warmup {warmup} --steps {steps} \
             (pass them explicitly to override)"
        );
    }
    let (name, net) = args.net.network(args.seed)?;
    let batches = if args.sweep.is_empty() {
        vec![args.net.batch]
    } else {
        args.sweep.clone()
    };
    if batches.contains(&0) {
        return Err(Error::Input("batch sizes must be at least 1".into()));
    }
    let graph = lower(
        &net.arch,
        &net.params,
        args.net.size,
        args.net.size,
        &LowerOptions::default(),
    )?;
    let tuning = args.gpu.tuning(&ctx, args.precision)?;
    let mut results = Vec::new();
    for &batch in &batches {
        let session = Session::with_options(
            &ctx,
            graph.clone(),
            batch,
            &SessionOptions {
                precision: args.precision,
                profile: args.gpu.profile()?,
                tuning: tuning.clone(),
                ..Default::default()
            },
        )?;
        let setup_s = started.elapsed().as_secs_f64();
        let r = bench_one(
            &args, &name, &net.arch, &session, batch, warmup, steps, &adapter, setup_s,
        )?;
        if args.profile {
            profile(&args, &session, batch)?;
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

#[allow(clippy::too_many_arguments)]
fn bench_one(
    args: &BenchArgs,
    name: &str,
    arch: &Arch,
    session: &Session,
    batch: usize,
    warmup: usize,
    steps: usize,
    adapter: &AdapterSummary,
    setup_s: f64,
) -> Result<BenchResult> {
    let input = bench_input(session, batch, args.seed)?;
    let [_, h, w] = session.input_shape();
    let plan = session.plan();
    let flops_per_image = 2 * session.graph().macs_per_image();
    let quiet = args.json || !args.sweep.is_empty();
    if !quiet {
        println!(
            "model {name} ({}, ResNet-{}), batch {batch}, {h}x{w}, {:.2} GFLOP/image, weights {:.1} MiB, arena {:.1} MiB{}",
            arch.flavour,
            arch.depth(),
            flops_per_image as f64 * 1e-9,
            plan.weights_bytes as f64 / 1048576.0,
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
    let bar = ProgressBar::new(warmup.saturating_add(steps) as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("batch {batch}"));
    let timing = if session.has_timestamps() {
        Timing::Whole
    } else {
        Timing::Off
    };
    bar.set_message("burn-in");
    let mut first_batch_s = None;
    for _ in 0..warmup {
        let t0 = Instant::now();
        session.run_nchw(&input, batch)?;
        first_batch_s.get_or_insert(t0.elapsed().as_secs_f64());
        bar.inc(1);
    }
    bar.set_message("timed");
    let mut durations = Vec::with_capacity(steps);
    let mut gpu = Vec::with_capacity(steps);
    for i in 0..steps {
        let t0 = Instant::now();
        let (_, t) = session.run_nchw_timed(&input, batch, timing)?;
        let d = t0.elapsed().as_secs_f64();
        first_batch_s.get_or_insert(d);
        durations.push(d);
        if let Some(t) = t {
            gpu.push(t.gpu_seconds);
        }
        if !quiet && i % 10 == 0 {
            bar.suspend(|| println!("step {i}, duration = {d:.3}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (mean, sd) = mean_sd(&durations);
    let gpu_mean = (!gpu.is_empty()).then(|| mean_sd(&gpu).0);
    let r = BenchResult {
        model: name.to_string(),
        batch,
        size: h,
        warmup,
        steps,
        setup_s,
        // Steps >= 1 is checked above, so some batch ran.
        first_batch_s: first_batch_s.unwrap_or(f64::NAN),
        mean_s: mean,
        sd_s: sd,
        min_s: durations.iter().copied().fold(f64::INFINITY, f64::min),
        max_s: durations.iter().copied().fold(0.0, f64::max),
        images_per_s: batch as f64 / mean,
        precision: plan.precision.name(),
        flops_per_image,
        flops_executed_per_image: 2 * plan.macs_executed_per_image(),
        gflops: flops_per_image as f64 * batch as f64 / mean * 1e-9,
        gpu_mean_s: gpu_mean,
        weights_bytes: plan.weights_bytes,
        arena_bytes: plan.arena_bytes,
        adapter: adapter.clone(),
    };
    if !quiet {
        println!("forward across {steps} steps, {mean:.3} +/- {sd:.3} sec / batch");
        println!(
            "{:.2} images/s, {:.2} GFLOP/s{}",
            r.images_per_s,
            r.gflops,
            match gpu_mean {
                Some(g) => format!(", GPU time {g:.3} s / batch"),
                None => ", GPU time n/a (adapter has no timestamp queries)".into(),
            }
        );
    }
    Ok(r)
}

fn profile(args: &BenchArgs, session: &Session, batch: usize) -> Result<()> {
    if !session.has_timestamps() {
        return Err(Error::Gpu(
            "--profile needs timestamp queries, which this adapter does not offer (wgpu feature TIMESTAMP_QUERY)"
                .into(),
        ));
    }
    let input = bench_input(session, batch, args.seed)?;
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
