//! A session owns everything a plan needs on the GPU, created once: the activation arena, the
//! weight buffers (filled once), every pipeline, uniform buffer and bind group. A forward pass
//! only uploads the input, submits the fixed dispatch sequence and reads the logits back.

use super::kernels::{ConvTextures, ConvVariant, Kernels, texture};
use super::timing::{Timer, Timing, Timings};
use super::{Dispatch, GpuContext, encode_sequence};
use crate::error::{Error, Result};
use crate::graph::{Graph, Op, TensorId};
use crate::layout::{nchw_to_nhwc, nhwc_to_nchw};
use crate::plan::{self, Plan};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};

/// A feature map read back from the GPU, NCHW.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMap {
    pub name: String,
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

/// What a forward pass returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// `[n, classes]`, row-major.
    pub logits: Vec<f32>,
    pub classes: usize,
    /// The `feat/*` maps when the graph was lowered with features, in network order.
    pub features: Vec<FeatureMap>,
}

/// State a forward pass mutates; behind a mutex so that a session is `Sync` and concurrent
/// callers take turns on the one arena instead of corrupting each other's activations.
struct RunState {
    /// Dispatch lists by sub-batch size: the plan's own size is built with the session, a
    /// smaller trailing sub-batch on first use (only the uniforms differ; pipelines are shared).
    dispatches: HashMap<usize, Vec<Dispatch>>,
    /// Timestamp queries, created on the first timed run.
    timer: Option<Timer>,
    /// A forward pass whose wait timed out: the next run waits for it (the read-back buffer
    /// is still being mapped) before it submits anything.
    pending: Option<Pending>,
}

/// A submission still in flight after its wait timed out.
struct Pending {
    index: wgpu::SubmissionIndex,
    mapped: Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

/// A network on a device, ready to run batches of up to `plan.batch` images per submission.
pub struct Session {
    ctx: GpuContext,
    graph: Graph,
    plan: Plan,
    kernels: Kernels,
    arena: wgpu::Buffer,
    weights: Vec<wgpu::Buffer>,
    /// Texture conv variant only: the staging texture its inputs are copied into, and a
    /// texture copy of each weights buffer a texture conv reads (None for the others).
    input_texture: Option<wgpu::Texture>,
    weight_textures: Vec<Option<wgpu::Texture>>,
    readback: wgpu::Buffer,
    state: Mutex<RunState>,
}

/// Texels of the textures the plan's texture-variant convs read: the staging input texture
/// (0: none) and whether each weights buffer needs a texture copy.
struct TextureSizes {
    input: u64,
    weights: Vec<bool>,
    weight_texels: Vec<u64>,
}

impl TextureSizes {
    fn of(graph: &Graph, plan: &Plan) -> TextureSizes {
        let mut sizes = TextureSizes {
            input: 0,
            weights: vec![false; plan.weight_buffers.len()],
            weight_texels: plan.weight_buffers.iter().map(|b| b.div_ceil(16)).collect(),
        };
        for ((op, step), slot) in graph.ops.iter().zip(&plan.steps).zip(&plan.weights) {
            if let (Op::Conv(o), Some(cfg)) = (op, &step.conv)
                && cfg.variant == ConvVariant::Texture
            {
                let t = &graph.tensors[o.input];
                let texels = (plan.batch * t.h * t.w * t.c.div_ceil(4)) as u64;
                sizes.input = sizes.input.max(texels);
                sizes.weights[slot.buffer] = true;
            }
        }
        sizes
    }

    fn fit(&self, limits: &wgpu::Limits) -> bool {
        texture::fits(self.input, limits)
            && self
                .weights
                .iter()
                .zip(&self.weight_texels)
                .all(|(&used, &texels)| !used || texture::fits(texels, limits))
    }
}

/// Byte offset of each tensor in the arena, indexed by TensorId.
fn offsets(plan: &Plan) -> Vec<u64> {
    plan.tensors.iter().map(|p| p.offset_bytes).collect()
}

impl Session {
    /// Plans `graph` for `batch` images (split into sub-batches if the device's limits demand
    /// it), allocates and fills every buffer and records every dispatch.
    pub fn new(ctx: &GpuContext, graph: Graph, batch: usize) -> Result<Session> {
        Self::with_limits(ctx, graph, batch, &plan::Limits::from_wgpu(&ctx.limits))
    }

    /// As [`Session::new`], planning for `limits` instead of the device's own (which must be
    /// at least as large): how the sub-batch split is exercised on a device with big limits.
    pub fn with_limits(
        ctx: &GpuContext,
        graph: Graph,
        batch: usize,
        limits: &plan::Limits,
    ) -> Result<Session> {
        if batch == 0 {
            return Err(Error::Input("batch size must be at least 1".into()));
        }
        ctx.check()?;
        let mut kernels = Kernels::new(&ctx.device, &ctx.limits);
        let mut plan = plan::plan_for(&graph, batch, limits, &kernels.device_profile())?;
        let mut textures = TextureSizes::of(&graph, &plan);
        if !textures.fit(&ctx.limits) {
            log::info!(
                "the texture conv variant's textures exceed this device's largest texture; \
                 using buffer loads"
            );
            kernels.set_textures(false);
            plan = plan::plan_for(&graph, batch, limits, &kernels.device_profile())?;
            textures = TextureSizes::of(&graph, &plan);
        }
        if plan.batch < batch {
            log::info!(
                "batch {batch} exceeds the device's buffer limits; running it as {} sub-batches of {}",
                batch.div_ceil(plan.batch),
                plan.batch
            );
        }
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);

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
        for (op, slot) in graph.ops.iter().zip(&plan.weights) {
            if slot.size_bytes > 0 {
                ctx.queue.write_buffer(
                    &weights[slot.buffer],
                    slot.offset_bytes,
                    bytemuck::cast_slice(&op.constants()),
                );
            }
        }
        let input_texture = (textures.input > 0)
            .then(|| texture::create(device, textures.input, "texture conv input"));
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("weight textures"),
        });
        let weight_textures: Vec<Option<wgpu::Texture>> = textures
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
                        &format!("weights {i} texture"),
                    )
                })
            })
            .collect();
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: Self::readback_bytes(&graph, plan.batch).max(16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut session = Session {
            ctx: ctx.clone(),
            graph,
            plan,
            kernels,
            arena,
            weights,
            input_texture,
            weight_textures,
            readback,
            state: Mutex::new(RunState {
                dispatches: HashMap::new(),
                timer: None,
                pending: None,
            }),
        };
        let full = session.record(session.plan.batch)?;
        session
            .state
            .get_mut()
            .expect("fresh mutex")
            .dispatches
            .insert(session.plan.batch, full);
        // After the weight uploads queued above: fills the weight textures.
        ctx.queue.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(ctx.explain(Error::DeviceLimits(format!(
                "out of GPU memory creating the session: {e}"
            ))));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(ctx.explain(Error::Gpu(e.to_string())));
        }
        ctx.check()?;
        Ok(session)
    }

    fn readback_bytes(graph: &Graph, batch: usize) -> u64 {
        let per_image: usize = std::iter::once(graph.logits)
            .chain(graph.features.iter().map(|(_, t)| *t))
            .map(|t| graph.tensors[t].len())
            .sum();
        (per_image * batch * 4) as u64
    }

    /// Records the dispatch list for a sub-batch of `n` images.
    fn record(&self, n: usize) -> Result<Vec<Dispatch>> {
        let offsets = offsets(&self.plan);
        let tensors = &self.graph.tensors;
        let n = n as u32;
        self.graph
            .ops
            .iter()
            .zip(&self.plan.weights)
            .zip(&self.plan.steps)
            .map(|((op, slot), step)| {
                let consts = (slot.size_bytes > 0).then(|| wgpu::BufferBinding {
                    buffer: &self.weights[slot.buffer],
                    offset: slot.offset_bytes,
                    size: wgpu::BufferSize::new(slot.size_bytes),
                });
                let k = &self.kernels;
                let arena = &self.arena;
                match op {
                    Op::Conv(o) => {
                        // The plan's choice; a smaller trailing sub-batch has another M, so
                        // its tiles (and bounds checks) are chosen again for its size.
                        let cfg = step
                            .conv
                            .filter(|_| n as usize == self.plan.batch)
                            .map_or_else(|| k.conv_config_for(o, tensors, n), Ok)?;
                        let textures =
                            (cfg.variant == ConvVariant::Texture).then(|| ConvTextures {
                                input: self.input_texture.as_ref().expect("planned"),
                                weights: self.weight_textures[slot.buffer]
                                    .as_ref()
                                    .expect("planned"),
                                weights_texel: u32::try_from(slot.offset_bytes / 16)
                                    .expect("weights texture offset fits in u32"),
                            });
                        Ok(k.conv_with(
                            &cfg,
                            o,
                            tensors,
                            n,
                            arena,
                            &offsets,
                            consts.expect("a conv has weights"),
                            textures,
                        ))
                    }
                    Op::MaxPool(o) => Ok(k.max_pool(o, tensors, n, arena, &offsets)),
                    Op::GlobalAvgPool(o) => {
                        Ok(k.global_avg_pool(o, tensors, n, arena, &offsets, consts))
                    }
                    Op::BnRelu(o) => Ok(k.bn_relu(
                        o,
                        tensors,
                        n,
                        arena,
                        &offsets,
                        consts.expect("bn_relu has constants"),
                    )),
                }
            })
            .collect()
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
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
        let dispatches = {
            let mut state = self.lock()?;
            self.dispatches(&mut state, batch)?.to_vec()
        };
        encode_sequence(encoder, "resnet forward", &dispatches, None);
        Ok(())
    }

    /// The dispatch list for a sub-batch of `n` images, recorded on first use.
    fn dispatches<'s>(&self, state: &'s mut RunState, n: usize) -> Result<&'s [Dispatch]> {
        Ok(match state.dispatches.entry(n) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(self.record(n)?),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, RunState>> {
        self.state.lock().map_err(|_| {
            Error::Gpu("a previous forward pass panicked; create a new session".into())
        })
    }

    /// `(channels, height, width)` of one input image.
    pub fn input_shape(&self) -> [usize; 3] {
        let t = &self.graph.tensors[self.graph.input];
        [t.c, t.h, t.w]
    }

    /// Runs `n` images given NCHW (`[n, c, h, w]`, already preprocessed).
    pub fn run_nchw(&self, input: &[f32], n: usize) -> Result<Output> {
        Ok(self.run_nchw_timed(input, n, Timing::Off)?.0)
    }

    fn check_input(&self, input: &[f32], n: usize) -> Result<()> {
        let [c, h, w] = self.input_shape();
        if n == 0 {
            return Err(Error::Input("batch is empty".into()));
        }
        if input.len() != n * c * h * w {
            return Err(Error::Input(format!(
                "expected {n} x {c} x {h} x {w} = {} input values, got {}",
                n * c * h * w,
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
    pub fn run_nhwc(&self, input: &[f32], n: usize) -> Result<Output> {
        Ok(self.run_nhwc_timed(input, n, Timing::Off)?.0)
    }

    /// Whether the device can time passes ([`Timing::Whole`], [`Timing::PerDispatch`]).
    pub fn has_timestamps(&self) -> bool {
        self.ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// As [`Session::run_nchw`], also measuring GPU time; `None` where the device lacks
    /// timestamp queries or `timing` is [`Timing::Off`].
    pub fn run_nchw_timed(
        &self,
        input: &[f32],
        n: usize,
        timing: Timing,
    ) -> Result<(Output, Option<Timings>)> {
        let [c, h, w] = self.input_shape();
        self.check_input(input, n)?;
        self.forward(&nchw_to_nhwc(input, n, c, h, w), n, timing)
    }

    /// As [`Session::run_nhwc`], also measuring GPU time (see [`Session::run_nchw_timed`]).
    pub fn run_nhwc_timed(
        &self,
        input: &[f32],
        n: usize,
        timing: Timing,
    ) -> Result<(Output, Option<Timings>)> {
        self.check_input(input, n)?;
        self.forward(input, n, timing)
    }

    /// The forward pass over checked NHWC input, sub-batch by sub-batch.
    fn forward(
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
        let mut state = self.lock()?;
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
        for chunk in input.chunks(self.plan.batch * per_image) {
            let m = chunk.len() / per_image;
            let (read, times) = self.run_chunk(&mut state, chunk, m, timing)?;
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

    /// Tensors copied back after each sub-batch: the logits, then the features.
    fn outputs(&self) -> Vec<TensorId> {
        std::iter::once(self.graph.logits)
            .chain(self.graph.features.iter().map(|(_, t)| *t))
            .collect()
    }

    /// One submission: upload `m` images, replay the dispatches, read the outputs back (NHWC).
    /// Also returns the GPU seconds of each timed pass (empty when untimed).
    fn run_chunk(
        &self,
        state: &mut RunState,
        chunk: &[f32],
        m: usize,
        timing: Timing,
    ) -> Result<(Vec<Vec<f32>>, Vec<f64>)> {
        let ctx = &self.ctx;
        let device = &ctx.device;
        ctx.check()?;
        self.finish_pending(state)?;
        let pairs = match timing {
            Timing::Off => 0,
            Timing::Whole => 1,
            Timing::PerDispatch => self.graph.ops.len() as u32,
        };
        if pairs > 0 && state.timer.as_ref().is_none_or(|t| t.pairs() < pairs) {
            state.timer = Some(Timer::new(device, pairs));
        }
        self.dispatches(state, m)?;
        let dispatches = &state.dispatches[&m];
        let timer = state.timer.as_ref().filter(|_| pairs > 0);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let input_offset = self.plan.tensors[self.graph.input].offset_bytes;
        ctx.queue
            .write_buffer(&self.arena, input_offset, bytemuck::cast_slice(chunk));
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("forward"),
        });
        if timing == Timing::PerDispatch {
            // A pass per dispatch; a texture conv's input copy precedes its pass, outside
            // the timed span.
            for (i, d) in dispatches.iter().enumerate() {
                let one = std::slice::from_ref(d);
                encode_sequence(&mut encoder, &d.label, one, timer.map(|t| t.pair(i as u32)));
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
        for t in self.outputs() {
            let bytes = (self.graph.tensors[t].len() * m * 4) as u64;
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
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(ctx.explain(Error::Gpu(e.to_string())));
        }
        let slice = self.readback.slice(..at);
        let (tx, rx) = channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        if let Err(e) = ctx.wait(Some(index.clone()), "the forward pass") {
            if matches!(e, Error::Timeout { .. }) {
                state.pending = Some(Pending { index, mapped: rx });
            }
            return Err(e);
        }
        self.mapped(&rx)?;
        let result = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| ctx.explain(Error::Gpu(format!("reading back: {e}"))))?;
            let all: &[f32] = bytemuck::cast_slice(&view);
            let mut pieces = Vec::with_capacity(sizes.len());
            let mut start = 0usize;
            for bytes in sizes {
                let len = bytes as usize / 4;
                pieces.push(all[start..start + len].to_vec());
                start += len;
            }
            pieces
        };
        self.readback.unmap();
        let times = match timer.map(|t| t.read(ctx, pairs)) {
            Some(Ok(times)) => times,
            Some(Err(e)) => {
                // Its read-back may still be mapping: a later timed run makes a new one.
                state.timer = None;
                return Err(e);
            }
            None => Vec::new(),
        };
        Ok((result, times))
    }

    /// The outcome of the read-back's `map_async`, once its submission has finished.
    fn mapped(&self, rx: &Receiver<std::result::Result<(), wgpu::BufferAsyncError>>) -> Result<()> {
        match rx.try_recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self
                .ctx
                .explain(Error::Gpu(format!("mapping the read-back buffer: {e}")))),
            Err(_) => Err(self.ctx.explain(Error::Gpu(
                "the read-back buffer was not mapped after the forward pass finished".into(),
            ))),
        }
    }

    /// Waits for a forward pass whose wait timed out earlier and releases its read-back.
    fn finish_pending(&self, state: &mut RunState) -> Result<()> {
        let Some(p) = state.pending.take() else {
            return Ok(());
        };
        if let Err(e) = self.ctx.wait(
            Some(p.index.clone()),
            "an earlier forward pass that timed out",
        ) {
            if matches!(e, Error::Timeout { .. }) {
                state.pending = Some(p);
            }
            return Err(e);
        }
        // Its results were abandoned; only the mapping needs undoing.
        if self.mapped(&p.mapped).is_ok() {
            self.readback.unmap();
        }
        Ok(())
    }
}
