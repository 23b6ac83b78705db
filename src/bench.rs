//! The forward-throughput benchmark's measuring core: TF-slim's `time_tensorflow_run`
//! (burn-in batches, then timed batches, mean ± sd per batch) on one session.
//!
//! `resnet bench` and the Python package's `bench()` are front ends over [`Bench`], so both
//! report the same [`BenchResult`] (serialised, the fields of `resnet bench --json`); only the
//! printing, the progress bar and the per-dispatch profile live in the CLI.

use crate::error::{Error, Result};
use crate::gpu::context::AdapterSummary;
use crate::gpu::session::{Session, SessionOptions};
use crate::gpu::timing::Timing;
use crate::gpu::{AdapterChoice, GpuContext};
use crate::graph::{Graph, LowerOptions, lower};
use crate::model::load::{LoadOptions, load_network};
use crate::model::random::{random_input, random_params};
use crate::model::{Arch, Network};
use crate::plan::tuning::TuningTable;
use crate::plan::{DeviceProfile, Precision};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What to benchmark, and where.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// A preset (`resnet_v2_152`, `resnet50`, `ResNet50V2`, …) with seeded random weights;
    /// ignored when `weights` is given.
    pub model: String,
    /// A checkpoint in any format [`Model::load`](crate::Model::load) reads, instead of random weights.
    pub weights: Option<PathBuf>,
    /// Input side (square).
    pub size: usize,
    /// Burn-in batches; `None`: 10 (1 on a software adapter).
    pub warmup: Option<usize>,
    /// Timed batches; `None`: 100 (3 on a software adapter).
    pub steps: Option<usize>,
    /// Seed of the random weights and input.
    pub seed: u64,
    /// Storage precision of weights and activations.
    pub precision: Precision,
    /// Which adapter to open.
    pub adapter: AdapterChoice,
    /// Plan another device's kernels ([`SessionOptions::profile`]); `None`: this adapter's.
    pub profile: Option<DeviceProfile>,
    /// Tuned kernel choices (what `resnet tune` stored for the adapter, [`crate::tune::load`]);
    /// `None`: the plan's heuristic.
    pub tuning: Option<Arc<TuningTable>>,
    /// Where `setup_s` counts from (the CLI: process start); `None`: the call to
    /// [`Bench::new`].
    pub started: Option<Instant>,
}

impl Default for BenchOptions {
    /// TF-slim's experiment: `resnet_v2_152` at 224x224.
    fn default() -> Self {
        BenchOptions {
            model: "resnet_v2_152".into(),
            weights: None,
            size: 224,
            warmup: None,
            steps: None,
            seed: 0,
            precision: Precision::F32,
            adapter: AdapterChoice::default(),
            profile: None,
            tuning: None,
            started: None,
        }
    }
}

/// One batch size's figures: what `resnet bench --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// The preset's name or the checkpoint's path.
    pub model: String,
    /// Images per batch.
    pub batch: usize,
    /// Input side (square).
    pub size: usize,
    /// Burn-in batches run before timing.
    pub warmup: usize,
    /// Timed batches.
    pub steps: usize,
    /// From [`BenchOptions::started`] to this batch size's session ready (context, weights,
    /// plan, pipelines): what a user waits before the first batch can run.
    pub setup_s: f64,
    /// Wall time of the first batch on the session: on a cold driver cache it includes the
    /// shader compiles that drivers (lavapipe among them) defer to the first dispatch.
    pub first_batch_s: f64,
    /// Mean seconds per batch over the timed batches.
    pub mean_s: f64,
    /// Standard deviation of the seconds per batch.
    pub sd_s: f64,
    /// Fastest batch, seconds.
    pub min_s: f64,
    /// Slowest batch, seconds.
    pub max_s: f64,
    /// Images per second at the mean batch time.
    pub images_per_s: f64,
    /// `f32` or `f16` storage.
    pub precision: &'static str,
    /// 2 x the direct convolution's multiply-adds: "effective" FLOPs, as cuDNN and ncnn count.
    pub flops_per_image: u64,
    /// 2 x the multiply-adds the kernels execute (Winograd's GEMMs do fewer).
    pub flops_executed_per_image: u64,
    /// Effective GFLOP/s.
    pub gflops: f64,
    /// Mean GPU seconds per batch from timestamp queries; `None` where the adapter has none.
    pub gpu_mean_s: Option<f64>,
    /// Bytes of the folded weights on the device.
    pub weights_bytes: u64,
    /// Bytes of the activation arena.
    pub arena_bytes: u64,
    /// Bytes of weights resident on the device ([`Plan::resident_weight_bytes`]: the buffers
    /// launches bind and the texture variant's copies).
    ///
    /// [`Plan::resident_weight_bytes`]: crate::plan::Plan::resident_weight_bytes
    pub resident_weight_bytes: u64,
    /// Bytes the session holds on the device in all: arena, resident weights, textures.
    pub resident_bytes: u64,
    /// Distinct pipelines the session created.
    pub pipelines: usize,
    /// The adapter that ran it.
    pub adapter: AdapterSummary,
}

/// What [`Bench::measure`] reports as it goes (the CLI draws its progress bar from it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Progress {
    /// One burn-in batch finished.
    Warmup,
    /// Timed batch `index` took `seconds`.
    Step {
        /// The batch's index among the timed ones.
        index: usize,
        /// Its wall time.
        seconds: f64,
    },
}

/// A network lowered for one input size on an open device, ready to be timed at any batch.
pub struct Bench {
    started: Instant,
    ctx: GpuContext,
    adapter: AdapterSummary,
    name: String,
    arch: Arch,
    graph: Graph,
    warmup: usize,
    steps: usize,
    defaults_reduced: bool,
    seed: u64,
    precision: Precision,
    profile: Option<DeviceProfile>,
    tuning: Option<Arc<TuningTable>>,
}

impl Bench {
    /// Opens the device ([`BenchOptions::adapter`]), loads (or makes up) the weights and
    /// lowers the network.
    pub fn new(opts: &BenchOptions) -> Result<Bench> {
        let started = opts.started.unwrap_or_else(Instant::now);
        check_steps(opts.steps)?;
        Bench::with_context(
            GpuContext::new(&opts.adapter)?,
            &BenchOptions {
                started: Some(started),
                ..opts.clone()
            },
        )
    }

    /// As [`Bench::new`] on a device already open (a front end that reads the adapter's
    /// tuning file needs the device first); [`BenchOptions::adapter`] is not used.
    pub fn with_context(ctx: GpuContext, opts: &BenchOptions) -> Result<Bench> {
        let started = opts.started.unwrap_or_else(Instant::now);
        check_steps(opts.steps)?;
        let software = ctx.is_software();
        let (name, net) = network_or_preset(&opts.model, opts.weights.as_deref(), opts.seed)?;
        let graph = lower(
            &net.arch,
            &net.params,
            opts.size,
            opts.size,
            &LowerOptions::default(),
        )?;
        Ok(Bench {
            started,
            adapter: ctx.summary(),
            ctx,
            name,
            arch: net.arch,
            graph,
            warmup: opts.warmup.unwrap_or(if software { 1 } else { 10 }),
            steps: opts.steps.unwrap_or(if software { 3 } else { 100 }),
            defaults_reduced: software && (opts.warmup.is_none() || opts.steps.is_none()),
            seed: opts.seed,
            precision: opts.precision,
            profile: opts.profile,
            tuning: opts.tuning.clone(),
        })
    }

    /// The adapter the benchmark runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// The checkpoint's path or the preset's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network's architecture.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// Burn-in batches per batch size.
    pub fn warmup(&self) -> usize {
        self.warmup
    }

    /// Timed batches per batch size.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Whether a software adapter cut an unspecified warm-up or step count to its small
    /// default (a front end should say so).
    pub fn defaults_reduced(&self) -> bool {
        self.defaults_reduced
    }

    /// A session for batches of `batch` images (split into sub-batches where the device's
    /// limits require it).
    pub fn session(&self, batch: usize) -> Result<Session> {
        check_batch(batch)?;
        Session::with_options(
            &self.ctx,
            self.graph.clone(),
            batch,
            &SessionOptions {
                precision: self.precision,
                profile: self.profile,
                tuning: self.tuning.clone(),
                ..Default::default()
            },
        )
    }

    /// The benchmark's seeded input batch, or a clear error where the host cannot hold it
    /// (the session runs any batch as sub-batches, but the whole batch's input lives in memory).
    pub fn input(&self, session: &Session, batch: usize) -> Result<Vec<f32>> {
        let [c, h, w] = session.input_shape();
        let len = batch.checked_mul(c * h * w);
        let fits = len.is_some_and(|len| Vec::<f32>::new().try_reserve_exact(len).is_ok());
        match len {
            Some(len) if fits => Ok(random_input(len, self.seed ^ 0x5EED)),
            _ => Err(Error::Input(format!(
                "a batch of {batch} images of {c}x{h}x{w} needs {:.1} GiB of host memory for its \
                 input, more than this machine can allocate; use a smaller --batch",
                batch as f64 * (c * h * w * 4) as f64 / (1u64 << 30) as f64
            ))),
        }
    }

    /// Times `warmup` untimed and `steps` timed forward passes of `batch` images on `session`
    /// (wall time per batch, including upload and read-back; GPU time from timestamp queries
    /// where the device has them). Call it as soon as [`Bench::session`] returns: `setup_s`
    /// ends here.
    pub fn measure(
        &self,
        session: &Session,
        batch: usize,
        mut progress: impl FnMut(Progress),
    ) -> Result<BenchResult> {
        let setup_s = self.started.elapsed().as_secs_f64();
        let input = self.input(session, batch)?;
        let timing = if session.has_timestamps() {
            Timing::Whole
        } else {
            Timing::Off
        };
        let mut first_batch_s = None;
        for _ in 0..self.warmup {
            let t0 = Instant::now();
            session.run_nchw(&input, batch)?;
            first_batch_s.get_or_insert(t0.elapsed().as_secs_f64());
            progress(Progress::Warmup);
        }
        let mut durations = Vec::with_capacity(self.steps);
        let mut gpu = Vec::with_capacity(self.steps);
        for index in 0..self.steps {
            let t0 = Instant::now();
            let (_, t) = session.run_nchw_timed(&input, batch, timing)?;
            let seconds = t0.elapsed().as_secs_f64();
            first_batch_s.get_or_insert(seconds);
            durations.push(seconds);
            if let Some(t) = t {
                gpu.push(t.gpu_seconds);
            }
            progress(Progress::Step { index, seconds });
        }
        let (mean, sd) = mean_sd(&durations);
        let plan = session.plan();
        let flops_per_image = 2 * session.graph().macs_per_image();
        Ok(BenchResult {
            model: self.name.clone(),
            batch,
            size: session.input_shape()[1],
            warmup: self.warmup,
            steps: self.steps,
            setup_s,
            // `steps >= 1` is checked in `new`, so some batch ran.
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
            gpu_mean_s: (!gpu.is_empty()).then(|| mean_sd(&gpu).0),
            weights_bytes: plan.weights_bytes,
            arena_bytes: plan.arena_bytes,
            resident_weight_bytes: plan.resident_weight_bytes(),
            resident_bytes: plan.resident_bytes(),
            pipelines: session.pipeline_count(),
            adapter: self.adapter.clone(),
        })
    }

    /// [`Bench::session`] and [`Bench::measure`] without progress reports.
    pub fn run(&self, batch: usize) -> Result<BenchResult> {
        self.measure(&self.session(batch)?, batch, |_| {})
    }
}

/// The network of `weights` (any checkpoint format), else the preset `model` with random
/// weights of `seed` (kernel choices and speed depend on shapes only); with its display name.
pub fn network_or_preset(
    model: &str,
    weights: Option<&Path>,
    seed: u64,
) -> Result<(String, Network)> {
    Ok(match weights {
        Some(path) => {
            let net = load_network(path, &LoadOptions::default())?;
            (path.display().to_string(), net)
        }
        None => {
            let arch = Arch::preset(model)?;
            let params = random_params(&arch, seed);
            (model.to_string(), Network { arch, params })
        }
    })
}

fn check_steps(steps: Option<usize>) -> Result<()> {
    if steps == Some(0) {
        return Err(Error::Input(
            "--steps 0 would time nothing: give at least 1 (use --warmup for untimed batches)"
                .into(),
        ));
    }
    Ok(())
}

/// `Err` for a batch of no images (a sweep checks all its sizes before it starts).
pub fn check_batch(batch: usize) -> Result<()> {
    if batch == 0 {
        return Err(Error::Input("batch sizes must be at least 1".into()));
    }
    Ok(())
}

/// Mean and standard deviation as `time_tensorflow_run` computes them:
/// `sd = sqrt(E[x^2] - E[x]^2)`.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = (xs.iter().map(|x| x * x).sum::<f64>() / n - mean * mean).max(0.0);
    (mean, var.sqrt())
}
