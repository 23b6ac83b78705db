//! A session owns everything a plan needs on the GPU, created once: the activation arena, the
//! weight buffers (filled once), every pipeline, uniform buffer and bind group. A forward pass
//! only uploads the input, submits the fixed dispatch sequence and reads the logits back.
//!
//! Building a session and running it are async at heart (`*_async`): natively the blocking
//! forms run the same code under `pollster`; in the browser only the async forms exist.

use super::callback::Callback;
use super::kernels::{Kernels, Resources, texture};
use super::timing::{Timer, Timing, Timings};
use super::{Dispatch, GpuContext, encode_sequence, start_compiles};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::layout::{nchw_to_nhwc, nhwc_to_nchw};
use crate::plan::{self, DeviceProfile, Dtype, Plan, Precision};
use std::sync::Mutex;

/// A feature map read back from the GPU, NCHW.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMap {
    /// The tensor's name (`feat/…`).
    pub name: String,
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
    /// The values, NCHW.
    pub data: Vec<f32>,
}

/// What a forward pass returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// `[n, classes]`, row-major.
    pub logits: Vec<f32>,
    /// Number of classes (the logits' row length).
    pub classes: usize,
    /// The `feat/*` maps when the graph was lowered with features, in network order.
    pub features: Vec<FeatureMap>,
}

/// How to build a [`Session`].
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// Storage precision of activations and constants (the input and logits stay f32).
    pub precision: Precision,
    /// Plan for these limits instead of the device's own (which must be at least as large):
    /// how the sub-batch split is exercised on a device with big limits.
    pub limits: Option<plan::Limits>,
    /// Plan the kernels of another device (e.g. a GPU's mix on lavapipe) instead of this
    /// one's; what this device cannot run stays off. `None`: this adapter's own profile with
    /// the environment's overrides ([`profile_from_env`](crate::plan::device::profile_from_env)).
    pub profile: Option<DeviceProfile>,
    /// Tuned kernel choices for this adapter (`crate::tune`): the plan takes them where they
    /// match; `None`, the heuristic everywhere.
    pub tuning: Option<std::sync::Arc<plan::tuning::TuningTable>>,
    /// Sub-batch sizes to plan besides the full one and the batch's trailing one
    /// ([`PlanOptions::batch_sizes`](crate::plan::PlanOptions::batch_sizes)): a run of fewer images takes the smallest planned size
    /// that holds them.
    pub batch_sizes: Vec<usize>,
    /// Tests only: destroy the device once this many pipelines exist (a device lost while
    /// the session is being built, at the same point on any adapter).
    #[doc(hidden)]
    pub destroy_device_after_pipelines: Option<usize>,
}

/// A fault injected into a forward pass at a planned step, for tests of what a fault does to a
/// run in progress (a lost device, an error reported meanwhile, a wait that times out): it
/// lands at the same point of the run on any adapter, fast or slow. Not a stable API.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq)]
pub struct Failpoint {
    /// The pass of the next `run_*` call (0-based sub-batch) it lands in.
    pub sub_batch: usize,
    /// The plan step (its name in [`Plan::steps`]) it lands before: the pass's earlier steps
    /// are submitted first, then the fault, then the rest of the pass.
    pub step: String,
    pub action: FailAction,
}

/// What a [`Failpoint`] does.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq)]
pub enum FailAction {
    /// Destroys the device (as a driver reset or an unplugged GPU would).
    DestroyDevice,
    /// Reports an error on the device, as an app sharing it would ([`GpuContext::report_error`]).
    ReportError(String),
    /// The pass's wait ends as if its deadline had passed, leaving the pass in flight.
    Timeout,
}

/// State a forward pass mutates; behind a mutex so that a session is `Sync` and concurrent
/// callers take turns on the one arena instead of corrupting each other's activations.
struct RunState {
    /// Timestamp queries, created on the first timed run.
    timer: Option<Timer>,
    /// A forward pass whose wait failed: the next run waits for it (the read-back buffer may
    /// still be mapping) before it submits anything.
    pending: Option<Pending>,
    /// A fault to inject and the index of its step, taken by the run it lands in
    /// ([`Session::set_failpoint`]).
    failpoint: Option<(Failpoint, usize)>,
}

/// A submission still in flight after its wait failed.
struct Pending {
    index: wgpu::SubmissionIndex,
    mapped: Callback<std::result::Result<(), wgpu::BufferAsyncError>>,
}

/// A network on a device, ready to run batches of up to `plan.batch` images per submission.
pub struct Session {
    ctx: GpuContext,
    graph: Graph,
    plan: Plan,
    kernels: Kernels,
    arena: wgpu::Buffer,
    /// Kept alive for the bind groups (and the textures' copies).
    _weights: Vec<wgpu::Buffer>,
    _textures: Vec<wgpu::Texture>,
    readback: wgpu::Buffer,
    /// The dispatches of every planned sub-batch size ([`Plan::sub_batch_sizes`], same
    /// order), one per [`plan::Launch`], all recorded with the session: a run never records,
    /// plans or compiles.
    dispatches: Vec<Vec<Dispatch>>,
    state: Mutex<RunState>,
}

impl Session {
    /// Builds the session of `plan` (made for `graph` and this device): allocates the arena,
    /// the weight buffers (filled with [`plan::weights::encode`]) and the textures the plan
    /// sizes, creates each distinct pipeline once and records every launch.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_plan(ctx: &GpuContext, graph: Graph, plan: Plan) -> Result<Session> {
        pollster::block_on(Self::from_plan_async(ctx, graph, plan, None))
    }

    /// As [`Session::from_plan`], for async callers. `destroy_after`: tests only (see
    /// [`SessionOptions::destroy_device_after_pipelines`]).
    pub async fn from_plan_async(
        ctx: &GpuContext,
        graph: Graph,
        plan: Plan,
        destroy_after: Option<usize>,
    ) -> Result<Session> {
        ctx.check()?;
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut kernels = Kernels::new(&ctx.device);
        kernels.destroy_device_after_pipelines(destroy_after);
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("activation arena"),
            size: plan.arena_bytes.max(16),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let weights: Vec<wgpu::Buffer> = plan
            .weight_buffers
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("weights {i}")),
                    size: size.max(16),
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_DST
                        | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let t = &plan.textures;
        let staging = |texels: u64, dtype: Dtype| {
            (texels > 0).then(|| {
                texture::create(
                    device,
                    texels,
                    dtype,
                    &format!("texture conv input ({})", dtype.name()),
                )
            })
        };
        let staging = [
            staging(t.staging_f32, Dtype::F32),
            staging(t.staging_f16, Dtype::F16),
        ];
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("weight textures"),
        });
        let weight_textures: Vec<Option<wgpu::Texture>> = t
            .weights
            .iter()
            .zip(&weights)
            .enumerate()
            .map(|(i, (&used, buffer))| {
                used.then(|| {
                    texture::copy_of_buffer(
                        device,
                        &mut encoder,
                        buffer,
                        plan.precision.dtype(),
                        &format!("weights {i} texture"),
                    )
                })
            })
            .collect();
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: Self::outputs_of(&graph)
                .map(|t| plan.tensors[t].size_bytes)
                .sum::<u64>()
                .max(16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let res = Resources {
            arena: &arena,
            weights: &weights,
            staging: [staging[0].as_ref(), staging[1].as_ref()],
            weight_textures: &weight_textures,
        };
        let dispatches: Vec<Vec<Dispatch>> = plan
            .sub_batch_sizes
            .iter()
            .map(|sub| kernels.record(&plan.launches[sub.launches.clone()], &res))
            .collect();
        // The weights are encoded after the pipelines exist and their compiles have started:
        // on a driver that compiles at the first dispatch, the two then overlap (lavapipe,
        // resnet50 b1 224: the encoding and upload, ~0.25 s, no longer precede the compiles).
        start_compiles(device, &ctx.queue, dispatches.iter().flatten());
        for (buffer, offset, bytes) in plan::weights::encode(&graph, &plan) {
            ctx.queue.write_buffer(&weights[buffer], offset, &bytes);
        }
        // After the weight uploads just queued: fills the weight textures.
        ctx.queue.submit([encoder.finish()]);
        if let Some(e) = oom.pop().await {
            return Err(ctx.explain(Error::DeviceLimits(format!(
                "out of GPU memory creating the session: {e}"
            ))));
        }
        if let Some(e) = scope.pop().await {
            return Err(ctx.explain(Error::Gpu(e.to_string())));
        }
        ctx.check()?;
        let kept = weights
            .into_iter()
            .enumerate()
            .filter(|(i, _)| plan.buffer_bound(*i))
            .map(|(_, b)| b)
            .collect();
        Ok(Session {
            ctx: ctx.clone(),
            graph,
            plan,
            kernels,
            arena,
            // A weights buffer only the texture variant reads (through its texture copy,
            // recorded above) is not kept: the weights are held once.
            _weights: kept,
            _textures: staging
                .into_iter()
                .chain(weight_textures)
                .flatten()
                .collect(),
            readback,
            dispatches,
            state: Mutex::new(RunState {
                timer: None,
                pending: None,
                failpoint: None,
            }),
        })
    }

    /// Tensors copied back after each sub-batch: the logits, then the features.
    fn outputs_of(graph: &Graph) -> impl Iterator<Item = TensorId> + '_ {
        std::iter::once(graph.logits).chain(graph.features.iter().map(|(_, t)| *t))
    }

    /// The lowered network the session runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The plan the session executes.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The device the session runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Arms `failpoint` for the next untimed `run_*` call that reaches it (tests only). `Err`
    /// if the plan has no step of that name.
    #[doc(hidden)]
    pub fn set_failpoint(&self, failpoint: Failpoint) -> Result<()> {
        let step = self
            .plan
            .steps
            .iter()
            .position(|s| s.name == failpoint.step)
            .ok_or_else(|| {
                Error::Input(format!(
                    "failpoint: the plan has no step `{}`",
                    failpoint.step
                ))
            })?;
        self.lock()?.failpoint = Some((failpoint, step));
        Ok(())
    }

    /// Distinct compute pipelines the session created (each a shader compile in the driver):
    /// the plan's [`Plan::pipelines`], all made with the session; a forward pass of any size
    /// never adds one.
    pub fn pipeline_count(&self) -> usize {
        self.kernels.pipeline_count()
    }

    /// The dispatches recorded for the sub-batch size that runs `n` images, in order: what
    /// the launch-equality tests compare with [`Plan::launches_for`].
    pub fn recorded(&self, n: usize) -> &[Dispatch] {
        self.dispatches_for(n)
    }

    /// Where the input lives on the GPU, for apps that produce it there themselves:
    /// `(buffer, byte offset, byte size)` of `plan().batch` images, NHWC float32. Copy into
    /// it (or write it from your own shader), then [`Session::encode`].
    pub fn input_buffer(&self) -> (&wgpu::Buffer, u64, u64) {
        self.tensor_region(self.graph.input)
    }

    /// Where the logits land: `(buffer, byte offset, byte size)` of `plan().batch` rows of
    /// `classes` float32 after an encoded forward pass.
    pub fn logits_buffer(&self) -> (&wgpu::Buffer, u64, u64) {
        self.tensor_region(self.graph.logits)
    }

    fn tensor_region(&self, t: TensorId) -> (&wgpu::Buffer, u64, u64) {
        let bytes = (self.graph.tensors[t].len() * self.plan.batch * 4) as u64;
        (&self.arena, self.plan.tensors[t].offset_bytes, bytes)
    }

    /// Records the forward pass for `batch` images (at most `plan().batch`) into the app's
    /// own encoder: compute passes (and, for the texture conv variant, the copies of conv
    /// inputs into a texture between them), no upload, no read-back. The input must already be in
    /// [`Session::input_buffer`]; the logits are in [`Session::logits_buffer`] once the
    /// app's submission completes. Don't run [`Session::run_nchw`] on the same session
    /// between encoding and submitting: both use the one arena.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder, batch: usize) -> Result<()> {
        if batch == 0 || batch > self.plan.batch {
            return Err(Error::Input(format!(
                "encode takes 1..={} images (the session's sub-batch), got {batch}",
                self.plan.batch
            )));
        }
        self.ctx.check()?;
        encode_sequence(encoder, "resnet forward", self.dispatches_for(batch), None);
        Ok(())
    }

    /// The recorded dispatches that run `n` images (`1..=plan().batch`): those of the smallest
    /// planned sub-batch holding them ([`Plan::sub_batch_for`]).
    fn dispatches_for(&self, n: usize) -> &[Dispatch] {
        let i = self
            .plan
            .sub_batch_sizes
            .iter()
            .position(|s| s.images >= n)
            .unwrap_or(self.plan.sub_batch_sizes.len() - 1);
        &self.dispatches[i]
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, RunState>> {
        self.state.lock().map_err(|_| Self::poisoned())
    }

    fn poisoned() -> Error {
        Error::Gpu("a previous forward pass panicked; create a new session".into())
    }

    /// The run state for a forward pass. Natively: [`Session::lock`] (the holder never
    /// suspends: every wait of a forward pass blocks). In the browser one thread runs every
    /// task and a forward pass suspends while holding the state, so a second one (another
    /// promise on the same session) must not block on it, which would never end: it yields to
    /// the event loop until its turn comes.
    async fn lock_async(&self) -> Result<std::sync::MutexGuard<'_, RunState>> {
        #[cfg(target_arch = "wasm32")]
        loop {
            match self.state.try_lock() {
                Ok(guard) => return Ok(guard),
                Err(std::sync::TryLockError::Poisoned(_)) => return Err(Self::poisoned()),
                Err(std::sync::TryLockError::WouldBlock) => {
                    super::callback::sleep(std::time::Duration::from_millis(1)).await
                }
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.lock()
    }

    /// `(channels, height, width)` of one input image.
    pub fn input_shape(&self) -> [usize; 3] {
        let t = &self.graph.tensors[self.graph.input];
        [t.c, t.h, t.w]
    }

    /// Runs `n` images given NCHW (`[n, c, h, w]`, already preprocessed).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_nchw(&self, input: &[f32], n: usize) -> Result<Output> {
        Ok(self.run_nchw_timed(input, n, Timing::Off)?.0)
    }

    /// As [`Session::run_nchw`], for async callers (the only form in the browser).
    pub async fn run_nchw_async(&self, input: &[f32], n: usize) -> Result<Output> {
        Ok(self.run_nchw_timed_async(input, n, Timing::Off).await?.0)
    }

    fn check_input(&self, input: &[f32], n: usize) -> Result<()> {
        let [c, h, w] = self.input_shape();
        if n == 0 {
            return Err(Error::Input("batch is empty".into()));
        }
        let want = n.checked_mul(c * h * w);
        if want != Some(input.len()) {
            return Err(Error::Input(format!(
                "expected {n} x {c} x {h} x {w} = {} input values, got {}",
                want.map_or("more than usize::MAX".into(), |v| v.to_string()),
                input.len()
            )));
        }
        if let Some(i) = input.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!(
                "input value #{i} is {} (not finite)",
                input[i]
            )));
        }
        Ok(())
    }

    /// Runs `n` images given NHWC (`[n, h, w, c]`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_nhwc(&self, input: &[f32], n: usize) -> Result<Output> {
        Ok(self.run_nhwc_timed(input, n, Timing::Off)?.0)
    }

    /// As [`Session::run_nhwc`], for async callers (the only form in the browser).
    pub async fn run_nhwc_async(&self, input: &[f32], n: usize) -> Result<Output> {
        Ok(self.run_nhwc_timed_async(input, n, Timing::Off).await?.0)
    }

    /// Whether the device can time passes ([`Timing::Whole`], [`Timing::PerDispatch`]).
    pub fn has_timestamps(&self) -> bool {
        self.ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// As [`Session::run_nchw`], also measuring GPU time; `None` where the device lacks
    /// timestamp queries or `timing` is [`Timing::Off`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_nchw_timed(
        &self,
        input: &[f32],
        n: usize,
        timing: Timing,
    ) -> Result<(Output, Option<Timings>)> {
        pollster::block_on(self.run_nchw_timed_async(input, n, timing))
    }

    /// As [`Session::run_nchw_timed`], for async callers.
    pub async fn run_nchw_timed_async(
        &self,
        input: &[f32],
        n: usize,
        timing: Timing,
    ) -> Result<(Output, Option<Timings>)> {
        let [c, h, w] = self.input_shape();
        self.check_input(input, n)?;
        self.forward(&nchw_to_nhwc(input, n, c, h, w), n, timing)
            .await
    }

    /// As [`Session::run_nhwc`], also measuring GPU time (see [`Session::run_nchw_timed`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_nhwc_timed(
        &self,
        input: &[f32],
        n: usize,
        timing: Timing,
    ) -> Result<(Output, Option<Timings>)> {
        pollster::block_on(self.run_nhwc_timed_async(input, n, timing))
    }

    /// As [`Session::run_nhwc_timed`], for async callers.
    pub async fn run_nhwc_timed_async(
        &self,
        input: &[f32],
        n: usize,
        timing: Timing,
    ) -> Result<(Output, Option<Timings>)> {
        self.check_input(input, n)?;
        self.forward(input, n, timing).await
    }

    /// The forward pass over checked NHWC input, sub-batch by sub-batch.
    // The run state stays locked across the waits: see `lock_async` for why neither a native
    // thread nor a browser task can deadlock on it.
    #[allow(clippy::await_holding_lock)]
    async fn forward(
        &self,
        input: &[f32],
        n: usize,
        timing: Timing,
    ) -> Result<(Output, Option<Timings>)> {
        let timing = if self.has_timestamps() {
            timing
        } else {
            Timing::Off
        };
        let per_image = self.graph.tensors[self.graph.input].len();
        let classes = self.graph.classes();
        let mut out = Output {
            logits: Vec::with_capacity(n * classes),
            classes,
            features: Vec::new(),
        };
        let mut feats: Vec<Vec<Vec<f32>>> = vec![Vec::new(); self.graph.features.len()];
        let mut state = self.lock_async().await?;
        let mut timings = (timing != Timing::Off).then(|| Timings {
            gpu_seconds: 0.0,
            per_dispatch: vec![
                0.0;
                if timing == Timing::PerDispatch {
                    self.graph.ops.len()
                } else {
                    0
                }
            ],
        });
        for (pass, chunk) in input.chunks(self.plan.batch * per_image).enumerate() {
            let m = chunk.len() / per_image;
            let (read, times) = self.run_chunk(&mut state, chunk, m, pass, timing).await?;
            if let Some(t) = timings.as_mut() {
                match timing {
                    Timing::PerDispatch => {
                        for (acc, s) in t.per_dispatch.iter_mut().zip(&times) {
                            *acc += s;
                        }
                        t.gpu_seconds += times.iter().sum::<f64>();
                    }
                    _ => t.gpu_seconds += times.iter().sum::<f64>(),
                }
            }
            let mut pieces = read.into_iter();
            out.logits.extend(pieces.next().expect("logits first"));
            for (f, piece) in feats.iter_mut().zip(pieces) {
                f.push(piece);
            }
        }
        for ((name, t), chunks) in self.graph.features.iter().zip(feats) {
            let info = &self.graph.tensors[*t];
            let nhwc: Vec<f32> = chunks.concat();
            out.features.push(FeatureMap {
                name: name.clone(),
                shape: [n, info.c, info.h, info.w],
                data: nhwc_to_nchw(&nhwc, n, info.h, info.w, info.c),
            });
        }
        Ok((out, timings))
    }

    /// One submission: upload `m` images, replay the dispatches, read the outputs back (NHWC).
    /// Also returns the GPU seconds of each timed pass (empty when untimed).
    async fn run_chunk(
        &self,
        state: &mut RunState,
        chunk: &[f32],
        m: usize,
        pass: usize,
        timing: Timing,
    ) -> Result<(Vec<Vec<f32>>, Vec<f64>)> {
        let ctx = &self.ctx;
        let device = &ctx.device;
        ctx.check()?;
        self.finish_pending(state).await?;
        // From here every call on the device is ours: their validation errors are this call's.
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pairs = match timing {
            Timing::Off => 0,
            Timing::Whole => 1,
            Timing::PerDispatch => self.graph.ops.len() as u32,
        };
        if pairs > 0 && state.timer.as_ref().is_none_or(|t| t.pairs() < pairs) {
            state.timer = Some(Timer::new(device, pairs));
        }
        let dispatches = self.dispatches_for(m);
        let timer = state.timer.as_ref().filter(|_| pairs > 0);
        let input_offset = self.plan.tensors[self.graph.input].offset_bytes;
        ctx.queue
            .write_buffer(&self.arena, input_offset, bytemuck::cast_slice(chunk));
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("forward"),
        });
        let fault = match &state.failpoint {
            Some((f, _)) if f.sub_batch == pass && timing == Timing::Off => state.failpoint.take(),
            _ => None,
        };
        let mut timed_out = false;
        if let Some((f, step)) = fault {
            // The steps before the failpoint's run first, then the fault, then the rest.
            let at = dispatches
                .iter()
                .position(|d| d.step >= step)
                .unwrap_or(dispatches.len());
            encode_sequence(&mut encoder, "forward", &dispatches[..at], None);
            ctx.queue.submit([encoder.finish()]);
            match f.action {
                FailAction::DestroyDevice => device.destroy(),
                FailAction::ReportError(e) => ctx.report_error(&e),
                FailAction::Timeout => timed_out = true,
            }
            encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward"),
            });
            encode_sequence(&mut encoder, "forward", &dispatches[at..], None);
        } else if timing == Timing::PerDispatch {
            // Timestamps around each step's dispatches (a texture GEMM's input copy before
            // its first pass is outside the span; copies between a step's passes are in it).
            for (i, step) in self.plan.steps.iter().enumerate() {
                let start = dispatches.partition_point(|d| d.step < i);
                let end = dispatches.partition_point(|d| d.step <= i);
                encode_sequence(
                    &mut encoder,
                    &step.name,
                    &dispatches[start..end],
                    timer.map(|t| t.pair(i as u32)),
                );
            }
        } else {
            encode_sequence(
                &mut encoder,
                "forward",
                dispatches,
                timer.map(|t| t.pair(0)),
            );
        }
        if let Some(t) = timer {
            t.resolve(&mut encoder, pairs);
        }
        let mut sizes = Vec::new();
        let mut at = 0u64;
        for t in Self::outputs_of(&self.graph) {
            let bytes =
                self.graph.tensors[t].len() as u64 * m as u64 * self.plan.tensors[t].dtype.bytes();
            encoder.copy_buffer_to_buffer(
                &self.arena,
                self.plan.tensors[t].offset_bytes,
                &self.readback,
                at,
                bytes,
            );
            sizes.push(bytes);
            at += bytes;
        }
        let index = ctx.queue.submit([encoder.finish()]);
        // Validation errors of the encoding surface at submission; a failed submission
        // would otherwise only show as a failed wait below.
        if let Some(e) = scope.pop().await {
            state.timer = None;
            return Err(ctx.explain(Error::Gpu(e.to_string())));
        }
        let slice = self.readback.slice(..at);
        let mapped = Callback::new();
        slice.map_async(wgpu::MapMode::Read, mapped.sender());
        let pending = Pending { index, mapped };
        let waited = if timed_out {
            Err(Error::Timeout {
                what: "the forward pass".into(),
                seconds: ctx.timeout().as_secs_f64(),
            })
        } else {
            ctx.wait_async(Some(pending.index.clone()), "the forward pass")
                .await
        };
        match waited {
            Ok(()) => {}
            Err(e @ Error::DeviceLost(_)) => return Err(e),
            Err(e) => {
                // The mapping may still complete: the next call waits for it and undoes it,
                // so that the read-back buffer is free again.
                state.pending = Some(pending);
                return Err(e);
            }
        }
        match ctx.delivered(&pending.mapped).await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(ctx.explain(Error::Gpu(format!("mapping the read-back buffer: {e}"))));
            }
            None => {
                state.pending = Some(pending);
                return Err(ctx.explain(Error::Gpu(
                    "the read-back buffer was not mapped after the forward pass finished".into(),
                )));
            }
        }
        let result = {
            let view = match slice.get_mapped_range() {
                Ok(view) => view,
                Err(e) => {
                    self.readback.unmap();
                    return Err(ctx.explain(Error::Gpu(format!("reading back: {e}"))));
                }
            };
            let mut pieces = Vec::with_capacity(sizes.len());
            let mut start = 0usize;
            for (bytes, t) in sizes.into_iter().zip(Self::outputs_of(&self.graph)) {
                let raw = &view[start..start + bytes as usize];
                pieces.push(match self.plan.tensors[t].dtype {
                    Dtype::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(raw),
                    Dtype::F16 => raw
                        .chunks_exact(2)
                        .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
                        .collect(),
                });
                start += bytes as usize;
            }
            pieces
        };
        self.readback.unmap();
        let times = match timer {
            Some(t) => match t.read(ctx, pairs).await {
                Ok(times) => times,
                Err(e) => {
                    // Its read-back may still be mapping: a later timed run makes a new one.
                    state.timer = None;
                    return Err(e);
                }
            },
            None => Vec::new(),
        };
        Ok((result, times))
    }

    /// Waits for a forward pass whose wait failed earlier and frees its read-back buffer.
    async fn finish_pending(&self, state: &mut RunState) -> Result<()> {
        let Some(p) = state.pending.take() else {
            return Ok(());
        };
        match self
            .ctx
            .wait_async(
                Some(p.index.clone()),
                "an earlier forward pass that did not finish",
            )
            .await
        {
            Ok(()) => {}
            Err(e @ Error::DeviceLost(_)) => return Err(e),
            Err(e) => {
                state.pending = Some(p);
                return Err(e);
            }
        }
        match self.ctx.delivered(&p.mapped).await {
            // Its results were abandoned; only the mapping needs undoing.
            Some(Ok(())) => self.readback.unmap(),
            Some(Err(_)) => {}
            None => {
                state.pending = Some(p);
                return Err(self.ctx.explain(Error::Gpu(
                    "the read-back buffer of an earlier forward pass is still not mapped".into(),
                )));
            }
        }
        Ok(())
    }
}
