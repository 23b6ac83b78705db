//! The static execution plan: dispatch order, tensor lifetimes, arena offsets and the weight
//! buffer layout, for one batch size. Pure data, no GPU: the session turns it into buffers and
//! bind groups once and replays it.
//!
//! * **Liveness** (`arena`): a tensor lives from the step that writes it (the graph input from
//!   step 0: it is uploaded before the first dispatch) to the last step that reads it, inclusive;
//!   `logits` and every `features` map live until the last step. An op's inputs and outputs are
//!   live at the same step, so they never share memory (no in-place ops). The arena is planned
//!   in [`PHASES`] per step, because a Winograd conv runs in three: input transform (reads its
//!   input, writes the V scratch), GEMMs (V to M) and output transform (M and the residual to
//!   its output). Its input is dead after the first phase and its output born in the last, so
//!   the two may share memory, as may V and the output.
//! * **Offsets** (`arena`): every activation lives in one arena buffer. Offsets are assigned
//!   by a few greedy heuristics over the live intervals (largest tensor first, first-fit /
//!   best-fit, chronological first-fit, ...) and the smallest arena wins.
//! * **Sub-batching**: if the arena for the requested batch exceeds the device's largest
//!   binding / buffer, the plan is made for the largest sub-batch that fits, and the session
//!   loops over sub-batches (a last, partial sub-batch uses the same offsets, it just touches
//!   less of each tensor). If one image does not fit, planning fails with
//!   [`Error::DeviceLimits`].
//! * **Weights** (`weights`): each op's [`Op::constants`] get an aligned slot in one of
//!   several weight buffers, each no bigger than the device allows; [`weights::encode`] writes
//!   their bytes.
//! * **Launches** ([`launch`]): every dispatch of every planned sub-batch size, as data
//!   (pipeline key, uniform bytes, bindings, grid); a session replays them. With the
//!   `emit-shaders` feature, `emit` translates a pipeline key's shader as wgpu's backends do.

mod arena;
mod check;
pub mod device;
#[cfg(all(feature = "emit-shaders", not(target_arch = "wasm32")))]
pub mod emit;
pub mod kernel;
pub mod launch;
mod report;
pub mod tiles;
pub mod tuning;
pub mod variant;
pub mod weights;

use crate::error::{Error, Result};
use crate::graph::{Graph, Op, pad4};
use crate::winograd::Tile;

pub use arena::{Interval, PHASES};
pub use kernel::{
    ConvAlgo, ConvConfig, ConvPlan, ConvVariant, DeviceProfile, PlanFor, WinogradPolicy,
};
pub use launch::{Launch, PipelineKey, Resource, Textures};

/// The device limits the plan must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest storage buffer binding (the arena is bound whole; one weight slot is one binding).
    pub max_binding_bytes: u64,
    /// Largest buffer.
    pub max_buffer_bytes: u64,
    /// Every tensor offset and weight slot offset is a multiple of this.
    pub storage_offset_alignment: u64,
    /// Workgroups per grid dimension: larger grids are folded into y.
    pub max_workgroups_per_dimension: u32,
    /// Width and height of the largest 2D texture: the texture conv variant's textures must
    /// fit, or the plan takes the buffer variants.
    pub max_texture_dimension_2d: u32,
    /// Storage buffers one shader stage may bind (every launch binds at most two).
    pub max_storage_buffers_per_stage: u32,
    /// Workgroup memory per workgroup (the shared variant's tiles must fit).
    pub max_workgroup_storage_bytes: u32,
    /// The device's features: the subgroup variant needs `SUBGROUP` and `SHADER_INT64`;
    /// `SHADER_F16` and `TIMESTAMP_QUERY` are recorded for the description (f16 storage is
    /// packed by hand and needs neither).
    pub features: wgpu::Features,
}

/// The kernels index the arena with u32 element indices: no arena may end past 2^32 elements
/// of its smallest type, f16 (8 GiB), whatever the device allows. Bigger batches become
/// sub-batches.
pub const MAX_ADDRESSABLE_BYTES: u64 = (u32::MAX as u64 + 1) * 2;

/// Offsets are never aligned to less than this, whatever the device reports: 256 bytes keeps
/// every tensor start aligned for vectorised loads, and plans comparable across devices.
pub const MIN_ALIGNMENT: u64 = 256;

impl Limits {
    /// The limits of a wgpu device (pass the limits and features the device was created
    /// with). The offset alignment is at least [`MIN_ALIGNMENT`].
    pub fn from_wgpu(l: &wgpu::Limits, features: wgpu::Features) -> Limits {
        Limits {
            max_binding_bytes: l.max_storage_buffer_binding_size,
            max_buffer_bytes: l.max_buffer_size,
            storage_offset_alignment: u64::from(l.min_storage_buffer_offset_alignment)
                .max(MIN_ALIGNMENT),
            max_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_texture_dimension_2d: l.max_texture_dimension_2d,
            max_storage_buffers_per_stage: l.max_storage_buffers_per_shader_stage,
            max_workgroup_storage_bytes: l.max_compute_workgroup_storage_size,
            features,
        }
    }

    /// No size limits, 256-byte alignment, WebGPU's default grid, texture, binding and
    /// workgroup memory limits, every feature: for reports and tests.
    pub fn unlimited() -> Limits {
        let webgpu = wgpu::Limits::default();
        Limits {
            max_binding_bytes: u64::MAX,
            max_buffer_bytes: u64::MAX,
            storage_offset_alignment: MIN_ALIGNMENT,
            max_workgroups_per_dimension: webgpu.max_compute_workgroups_per_dimension,
            max_texture_dimension_2d: webgpu.max_texture_dimension_2d,
            max_storage_buffers_per_stage: webgpu.max_storage_buffers_per_shader_stage,
            max_workgroup_storage_bytes: webgpu.max_compute_workgroup_storage_size,
            features: wgpu::Features::all(),
        }
    }

    /// The largest arena the device can hold and bind whole, and the kernels can address
    /// ([`MAX_ADDRESSABLE_BYTES`]).
    pub fn max_arena_bytes(&self) -> u64 {
        self.max_binding_bytes
            .min(self.max_buffer_bytes)
            .min(MAX_ADDRESSABLE_BYTES)
    }

    /// The alignment actually used (never 0).
    fn alignment(&self) -> u64 {
        self.storage_offset_alignment.max(1)
    }
}

/// How activations and constants are stored (every value is computed in f32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    /// f32 storage.
    F32,
    /// f16 storage of activations and constants (half the bytes), f32 arithmetic; the API's
    /// input and logits stay f32.
    F16,
}

impl Precision {
    /// `f32` or `f16`.
    pub fn name(self) -> &'static str {
        self.dtype().name()
    }

    /// The storage type of constants (and of most activations) at this precision.
    pub fn dtype(self) -> Dtype {
        match self {
            Precision::F32 => Dtype::F32,
            Precision::F16 => Dtype::F16,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            _ => Err(Error::Input(format!(
                "unknown precision `{s}`: use f32 or f16"
            ))),
        }
    }
}

/// The storage type of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 4 bytes.
    F32,
    /// 2 bytes.
    F16,
}

impl Dtype {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }

    /// `f32` or `f16`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
        }
    }
}

/// How to plan: precision, the device the kernel choices are for, and its tuning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Storage precision.
    pub precision: Precision,
    /// The kind of device the kernel choices are for.
    pub device: DeviceProfile,
    /// Tuned kernel choices ([`tuning`]) taken before the heuristic where their shape matches
    /// and `device` can run them.
    pub tuning: Option<std::sync::Arc<tuning::TuningTable>>,
    /// Sub-batch sizes to plan besides the full sub-batch and the requested batch's trailing
    /// one, for callers that run fewer images at a time (a classifier given a few files, a
    /// server merging requests). A run of `n` images takes the smallest planned size of at
    /// least `n` ([`Plan::sub_batch_for`]).
    pub batch_sizes: Vec<usize>,
}

/// A static plan for a batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Images per sub-batch: what the arena is sized for and what one pass over the steps runs.
    pub batch: usize,
    /// The batch asked for; `sub_batches()` passes of `batch` images cover it.
    pub requested_batch: usize,
    /// Storage precision.
    pub precision: Precision,
    /// One per graph op, in execution order (`steps[i].op == i`).
    pub steps: Vec<Step>,
    /// Sized for `batch` images: first the graph's tensors, indexed by `TensorId` (tensors no
    /// op touches get size 0), then the scratch tensors of [`Plan::scratch`].
    pub tensors: Vec<Placement>,
    /// The plan's own tensors (Winograd's transformed tiles, f32 in every precision), at
    /// `tensors[graph.tensors.len() + i]`.
    pub scratch: Vec<Scratch>,
    /// Size of the one activation buffer: the end of the highest-placed tensor.
    pub arena_bytes: u64,
    /// Sum of all tensor sizes: what one buffer per tensor would take.
    pub naive_bytes: u64,
    /// Max over steps of the bytes live at that step: no offset assignment can do better.
    pub lower_bound_bytes: u64,
    /// Indexed by op; ops with no constants get a slot of size 0 (buffer 0, offset 0; unbound).
    pub weights: Vec<WeightSlot>,
    /// Indexed by op: for a Winograd conv whose GEMM is the texture variant, the slot of the
    /// bias and pre-activation its transforms read; its `weights` slot then holds U alone,
    /// which only the texture copy serves, so that the weights are held once. `None` for
    /// every other op.
    pub transform_weights: Vec<Option<WeightSlot>>,
    /// Byte size of each weights buffer (the end of its last slot; slots are padded apart for
    /// alignment, so this can exceed the sum of its slots).
    pub weight_buffers: Vec<u64>,
    /// Sum of the slot sizes, unpadded: the model's constant bytes. The buffers' total is
    /// `weight_buffers.iter().sum()`.
    pub weights_bytes: u64,
    /// Every sub-batch size a session of this plan runs, ascending; the last is `batch`. Each
    /// is planned here, before the first run, so that a short pass never plans or compiles
    /// anything: see [`SubBatch`].
    pub sub_batch_sizes: Vec<SubBatch>,
    /// Every dispatch of every sub-batch size, as data: size by size (each size's range in
    /// [`SubBatch::launches`]), in step order within one. What a session runs, exactly.
    pub launches: Vec<Launch>,
    /// The textures the texture conv variant's launches read (none without it).
    pub textures: Textures,
}

/// One sub-batch size of a plan: the conv GEMMs for that many images. Each keeps the full
/// sub-batch's choice ([`kernel::conv_for_batch`]: the same pipelines, tuned choices honoured);
/// only the rows, grids and bounds checks follow the size. The other ops take the image count
/// from their uniforms alone.
#[derive(Clone, Debug, PartialEq)]
pub struct SubBatch {
    /// Images per pass.
    pub images: usize,
    /// Indexed by step: the conv's plan at this size (`None` for other ops).
    pub convs: Vec<Option<ConvPlan>>,
    /// Its launches, a range of [`Plan::launches`].
    pub launches: std::ops::Range<usize>,
}

/// A tensor the plan adds for a phased step ([`ConvAlgo::phased`]), live only within it: a
/// Winograd conv's transformed tiles, a split-K conv's partial sums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scratch {
    /// `<op>:winograd_v` (the input transform's output, `[a^2][tiles][cin]`),
    /// `<op>:winograd_m` (the GEMMs' output, `[a^2][tiles][cout]`) or `<op>:splitk_partials`
    /// (`[splits][pixels][coutp]`).
    pub name: String,
    /// The step it belongs to.
    pub step: usize,
    /// Elements per image.
    pub elems_per_image: u64,
    /// See [`scratch_dtype`].
    pub dtype: Dtype,
    /// The phases of its step (0..PHASES) it is live in, inclusive.
    pub phases: (usize, usize),
}

/// The scratch tensors that `algo` needs for `op` (step `step`), in dispatch order.
pub fn scratch_for(
    op: &crate::graph::ConvOp,
    algo: ConvAlgo,
    tensors: &[crate::graph::TensorInfo],
    precision: Precision,
    step: usize,
) -> Vec<Scratch> {
    let out = &tensors[op.output];
    match algo {
        ConvAlgo::Direct => Vec::new(),
        ConvAlgo::Winograd(tile) => {
            let tiles = (tile.tiles(out.h) * tile.tiles(out.w)) as u64;
            let points = tile.points() as u64;
            // V is written in phase 0 and read by the GEMMs in phase 1; M is written in phase
            // 1 and read by the output transform in phase 2.
            [("v", op.cin, (0, 1)), ("m", op.cout, (1, 2))]
                .into_iter()
                .map(|(role, channels, phases)| Scratch {
                    name: format!("{}:winograd_{role}", op.name),
                    step,
                    elems_per_image: points * tiles * channels as u64,
                    dtype: scratch_dtype(precision, tile),
                    phases,
                })
                .collect()
        }
        // Written by the GEMM in phase 0, read by the reduction in phase 2.
        ConvAlgo::SplitK(splits) => vec![Scratch {
            name: format!("{}:splitk_partials", op.name),
            step,
            elems_per_image: u64::from(splits) * (out.h * out.w) as u64 * pad4(op.cout) as u64,
            dtype: Dtype::F32,
            phases: (0, PHASES - 1),
        }],
    }
}

/// The storage type of a Winograd conv's transformed tiles: f16 in f16 plans for F(2,3),
/// whose transforms only add and subtract (V spans at most 4x its input's range, M's output
/// transform sums four values), f32 otherwise: F(4,3)'s V spans ~100x its input's range and
/// stored as f16 it cost the layer 1.2e-2 of relative error (f32 storage: 4e-3).
pub fn scratch_dtype(precision: Precision, tile: Tile) -> Dtype {
    match (precision, tile) {
        (Precision::F16, Tile::F2) => Dtype::F16,
        _ => Dtype::F32,
    }
}

/// One step: an op's dispatches (a Winograd conv has three).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index into [`Graph::ops`].
    pub op: usize,
    /// The op's name.
    pub name: String,
    /// `"conv"`, `"max_pool"`, `"global_avg_pool"` or `"bn_relu"`.
    pub kind: &'static str,
    /// `[N, H, W, C]` of the op's (first) output, `N` the sub-batch.
    pub output_shape: [usize; 4],
    /// Multiply-adds of the op's definition for the whole sub-batch (the direct
    /// convolution's count, whatever the algorithm: "effective").
    pub macs: u64,
    /// Multiply-adds the kernels execute (Winograd's GEMMs do fewer).
    pub macs_executed: u64,
    /// Convs: the algorithm and the GEMM's kernel configuration ([`kernel::choose_algo`], [`kernel::plan_conv`]).
    pub conv: Option<ConvPlan>,
    /// Phased steps: the ids of their [`Scratch`] tensors in [`Plan::tensors`], in the order
    /// of [`scratch_for`] (Winograd: V, M; split K: the partial sums).
    pub scratch: Vec<usize>,
}

impl Step {
    /// The conv's algorithm (direct for other ops).
    pub fn algo(&self) -> ConvAlgo {
        self.conv.map_or(ConvAlgo::Direct, |c| c.algo)
    }

    /// Winograd's tile, if the step is a Winograd conv.
    pub fn winograd(&self) -> Option<Tile> {
        self.algo().tile()
    }
}

/// Where a tensor lives in the arena, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Byte offset in the arena.
    pub offset_bytes: u64,
    /// Bytes in the arena.
    pub size_bytes: u64,
    /// Storage type.
    pub dtype: Dtype,
    /// First and last step (inclusive) at which the tensor holds live data.
    pub first_step: usize,
    /// Last live step (inclusive).
    pub last_step: usize,
    /// The same in phases (`step * PHASES + k`), the unit the arena is planned in: a
    /// Winograd conv's input dies after its first phase and its output is born in its last.
    pub phases: Interval,
}

impl Placement {
    /// End of the tensor's bytes in the arena.
    pub fn end_bytes(&self) -> u64 {
        self.offset_bytes + self.size_bytes
    }

    /// The tensor's offset in elements of its own dtype (what the kernels' uniforms hold).
    pub fn offset_elems(&self) -> u64 {
        self.offset_bytes / self.dtype.bytes()
    }
}

/// Where an op's constants live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightSlot {
    /// Index into [`Plan::weight_buffers`].
    pub buffer: usize,
    /// Byte offset in that buffer.
    pub offset_bytes: u64,
    /// `op.constants_len_for(its algorithm)` elements of the plan's precision.
    pub size_bytes: u64,
}

/// The kind of an op, as shown in plans.
pub fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Conv(_) => "conv",
        Op::MaxPool(_) => "max_pool",
        Op::GlobalAvgPool(_) => "global_avg_pool",
        Op::BnRelu(_) => "bn_relu",
    }
}

/// The storage type of every graph tensor at `precision`: f16 except the API's input and
/// logits and tensors whose channel count is not a multiple of 4 (f16 values are stored two
/// per word and moved four at a time); the two outputs of a split conv share one type.
pub fn tensor_dtypes(graph: &Graph, precision: Precision) -> Vec<Dtype> {
    let mut dtypes: Vec<Dtype> = (0..graph.tensors.len())
        .map(|t| match precision {
            Precision::F16
                if t != graph.input
                    && t != graph.logits
                    && graph.tensors[t].c.is_multiple_of(4) =>
            {
                Dtype::F16
            }
            _ => Dtype::F32,
        })
        .collect();
    for op in &graph.ops {
        if let Op::Conv(c) = op
            && let Some(s) = &c.split
            && dtypes[c.output] != dtypes[s.tensor]
        {
            dtypes[c.output] = Dtype::F32;
            dtypes[s.tensor] = Dtype::F32;
        }
    }
    dtypes
}

/// Plans `graph` for `batch` images on a device with `limits`, f32, with the kernel choices of
/// a hardware GPU ([`DeviceProfile::gpu`]); see [`plan_with`].
pub fn plan(graph: &Graph, batch: usize, limits: &Limits) -> Result<Plan> {
    plan_with(graph, batch, limits, &PlanOptions::default())
}

/// Plans `graph` for `batch` images on a device with `limits`. If the arena for `batch` images
/// is too big for the device, the plan is for the largest sub-batch that fits; Winograd convs
/// whose scratch alone would force sub-batches are computed directly instead. Where the
/// texture conv variant's textures would exceed the device's largest texture, the plan takes
/// the buffer variants instead.
pub fn plan_with(graph: &Graph, batch: usize, limits: &Limits, opts: &PlanOptions) -> Result<Plan> {
    // What the device cannot run stays off: the subgroup variant without its features.
    let runs_subgroups = limits
        .features
        .contains(launch::Shader::ConvSubgroup.features());
    let opts = &PlanOptions {
        device: DeviceProfile {
            subgroups: opts.device.subgroups && runs_subgroups,
            ..opts.device
        },
        ..opts.clone()
    };
    let plan = plan_once(graph, batch, limits, opts)?;
    let weights = plan.precision.dtype();
    if plan.textures.fit(&plan.weight_buffers, weights, limits) {
        return Ok(plan);
    }
    if opts.device.forced == Some(ConvVariant::Texture) {
        return Err(Error::DeviceLimits(format!(
            "the texture conv variant needs textures of {} texels a side, more than this \
             device's largest ({}); don't force it (RESNET_CONV_VARIANT), or use a smaller \
             batch or input",
            launch::texture_rows(plan.textures.staging_f32.max(plan.textures.staging_f16)),
            limits.max_texture_dimension_2d
        )));
    }
    log::info!(
        "the texture conv variant's textures exceed this device's largest texture ({} texels); \
         planning the buffer variants",
        limits.max_texture_dimension_2d
    );
    let opts = PlanOptions {
        device: DeviceProfile {
            textures: false,
            ..opts.device
        },
        ..opts.clone()
    };
    plan_once(graph, batch, limits, &opts)
}

/// [`plan_with`] for the profile as given.
fn plan_once(graph: &Graph, batch: usize, limits: &Limits, opts: &PlanOptions) -> Result<Plan> {
    if batch == 0 {
        return Err(Error::Input("the batch size must be at least 1".into()));
    }
    let device = &opts.device;
    let step_intervals = arena::liveness(graph)?;
    let dtypes = tensor_dtypes(graph, opts.precision);
    // Each conv's algorithm, for the requested batch (a sub-batch keeps the choice).
    let mut algos: Vec<ConvAlgo> = graph
        .ops
        .iter()
        .map(|op| match op {
            Op::Conv(c) => kernel::choose_algo(
                c,
                &graph.tensors,
                batch,
                device,
                opts.precision == Precision::F16,
            ),
            _ => ConvAlgo::Direct,
        })
        .collect();
    // Tuned choices, keyed by the heuristic's algorithm at the requested batch; a tuned
    // split count replaces the heuristic's (or makes a direct conv split K, or not).
    let mut tuned: Vec<Option<tuning::Choice>> = graph
        .ops
        .iter()
        .zip(&algos)
        .map(|(op, &algo)| {
            let (Op::Conv(c), Some(table)) = (op, &opts.tuning) else {
                return None;
            };
            let choice = table.get(&tuning::key(c, &graph.tensors, batch, algo))?;
            choice
                .runs_on(device, algo, c.kh * c.kw * c.cin)
                .then_some(choice)
        })
        .collect();
    for (algo, choice) in algos.iter_mut().zip(&tuned) {
        match (*algo, choice) {
            (ConvAlgo::Direct | ConvAlgo::SplitK(_), Some(c)) if c.splits > 1 => {
                *algo = ConvAlgo::SplitK(c.splits)
            }
            (ConvAlgo::SplitK(_), Some(_)) => *algo = ConvAlgo::Direct,
            _ => {}
        }
    }
    let align = limits.alignment();
    let cap = limits.max_arena_bytes();
    // Per-image bytes and live intervals of every tensor, the scratch of `algos` included.
    let tensors_for = |algos: &[ConvAlgo]| {
        let mut sizes: Vec<u64> = graph
            .tensors
            .iter()
            .zip(&step_intervals)
            .zip(&dtypes)
            .map(|((t, iv), d)| {
                if iv.is_some() {
                    t.len() as u64 * d.bytes()
                } else {
                    0
                }
            })
            .collect();
        let phased: Vec<bool> = algos.iter().map(|a| a.phased()).collect();
        let mut live = arena::phase_liveness(graph, &step_intervals, &phased);
        let mut scratch = Vec::new();
        for (step, (op, &algo)) in graph.ops.iter().zip(algos).enumerate() {
            if let Op::Conv(c) = op {
                for sc in scratch_for(c, algo, &graph.tensors, opts.precision, step) {
                    sizes.push(sc.elems_per_image * sc.dtype.bytes());
                    live.push(Some(Interval {
                        first: step * PHASES + sc.phases.0,
                        last: step * PHASES + sc.phases.1,
                    }));
                    scratch.push(sc);
                }
            }
        }
        (sizes, live, scratch)
    };
    let layout_for = |sizes: &[u64], live: &[Option<Interval>], b: usize| {
        let sizes: Vec<u64> = sizes.iter().map(|s| s * b as u64).collect();
        arena::assign(&sizes, live, align)
    };

    let (mut sizes, mut live, mut scratch) = tensors_for(&algos);
    // One image must fit; then every size below is at most `cap` bytes, so no sum overflows.
    let mut one = layout_for(&sizes, &live, 1);
    if one.arena_bytes > cap && algos.iter().any(|a| a.phased()) {
        algos.iter_mut().for_each(|a| *a = ConvAlgo::Direct);
        // Tuned for other algorithms: the heuristic plans these direct convs.
        tuned.iter_mut().for_each(|t| *t = None);
        (sizes, live, scratch) = tensors_for(&algos);
        one = layout_for(&sizes, &live, 1);
    }
    if one.arena_bytes > cap {
        let h = &graph.tensors[graph.input];
        return Err(Error::DeviceLimits(format!(
            "one {}x{} image needs a {} activation arena (lower bound {}), but this device \
             binds at most {} (max_storage_buffer_binding_size {}, max_buffer_size {}, kernel \
             addressing {}); use a smaller input size",
            h.h,
            h.w,
            mib(one.arena_bytes),
            mib(one.lower_bound_bytes),
            mib(cap),
            limits.max_binding_bytes,
            limits.max_buffer_bytes,
            mib(MAX_ADDRESSABLE_BYTES),
        )));
    }
    // Where the whole batch would fit without the scratch of Winograd and split K but not
    // with it, compute the convs live at the arena's peak directly, one at a time: a
    // sub-batch split costs more than a direct conv.
    if layout_for(
        &sizes,
        &live,
        batch.min((cap / one.lower_bound_bytes.max(1)) as usize + 1),
    )
    .arena_bytes
        > cap
    {
        let direct: Vec<ConvAlgo> = vec![ConvAlgo::Direct; algos.len()];
        let (dsizes, dlive, _) = tensors_for(&direct);
        let direct_fits = |b: usize| {
            arena::lower_bound(&dsizes, &dlive).saturating_mul(b as u64) <= cap
                && layout_for(&dsizes, &dlive, b).arena_bytes <= cap
        };
        if direct_fits(batch) {
            while layout_for(&sizes, &live, batch).arena_bytes > cap {
                let peak = arena::peak_step(&sizes, &live) / PHASES;
                let Some(demote) = scratch.iter().find(|s| s.step == peak).map(|s| s.step) else {
                    break;
                };
                algos[demote] = ConvAlgo::Direct;
                (sizes, live, scratch) = tensors_for(&algos);
            }
        }
    }
    one = layout_for(&sizes, &live, 1);
    // The arena grows with the batch: `b` images need at least `b` times one image's lower
    // bound, which caps the search. The largest sub-batch that fits, by binary search.
    let upper = (cap / one.lower_bound_bytes.max(1)).clamp(1, batch as u64) as usize;
    let (mut lo, mut hi, mut layout) = (1usize, upper, one);
    if upper > 1 {
        // Usually the whole batch fits: one layout, no search.
        let l = layout_for(&sizes, &live, upper);
        if l.arena_bytes <= cap {
            (lo, layout) = (upper, l);
        } else {
            hi = upper - 1;
        }
    }
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let l = layout_for(&sizes, &live, mid);
        if l.arena_bytes <= cap {
            (lo, layout) = (mid, l);
        } else {
            hi = mid - 1;
        }
    }
    let sub = lo;

    let n_graph = graph.tensors.len();
    let mut next_scratch = n_graph;
    let steps: Vec<Step> = graph
        .ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let out = &graph.tensors[op.outputs()[0]];
            let macs = op.macs_per_image(&graph.tensors) * sub as u64;
            let conv = match op {
                Op::Conv(c) => {
                    let algo = algos[i];
                    Some(match tuned[i] {
                        Some(choice) => {
                            let forced = DeviceProfile {
                                forced: Some(choice.variant),
                                ..*device
                            };
                            let tile = choice.shared_tile();
                            let mut p = kernel::plan_conv_tiled(
                                c,
                                &graph.tensors,
                                sub,
                                &forced,
                                algo,
                                tile,
                            )?;
                            p.origin = tuning::Origin::Tuned;
                            p
                        }
                        None => kernel::plan_conv(c, &graph.tensors, sub, device, algo)?,
                    })
                }
                _ => None,
            };
            let n = match op {
                Op::Conv(c) => scratch_for(c, algos[i], &graph.tensors, opts.precision, i).len(),
                _ => 0,
            };
            let scratch = (next_scratch..next_scratch + n).collect();
            next_scratch += n;
            Ok(Step {
                op: i,
                name: op.name().to_string(),
                kind: op_kind(op),
                output_shape: [sub, out.h, out.w, out.c],
                macs,
                macs_executed: conv.map_or(macs, |c| c.macs_executed()),
                conv,
                scratch,
            })
        })
        .collect::<Result<_>>()?;
    let sub_batch_sizes = sub_batch_sizes(graph, &steps, batch, sub, &opts.batch_sizes)?;
    let tiles: Vec<Option<Tile>> = algos.iter().map(|a| a.tile()).collect();
    let holding: Vec<weights::Holding> =
        steps.iter().map(|s| weights::Holding::of(s.conv)).collect();
    let (weights, transform_weights, weight_buffers) =
        weights::pack(graph, &tiles, &holding, opts.precision, limits)?;
    let weights_bytes = weights
        .iter()
        .chain(transform_weights.iter().flatten())
        .map(|w| w.size_bytes)
        .sum();
    let tensors = live
        .iter()
        .zip(&layout.offsets)
        .zip(&sizes)
        .enumerate()
        .map(|(t, ((iv, &offset_bytes), &size))| {
            let iv = iv.unwrap_or(Interval { first: 0, last: 0 });
            Placement {
                offset_bytes,
                size_bytes: size * sub as u64,
                dtype: match dtypes.get(t) {
                    Some(&d) => d,
                    None => scratch[t - n_graph].dtype,
                },
                first_step: iv.first / PHASES,
                last_step: iv.last / PHASES,
                phases: iv,
            }
        })
        .collect();

    let mut plan = Plan {
        batch: sub,
        requested_batch: batch,
        precision: opts.precision,
        steps,
        tensors,
        scratch,
        arena_bytes: layout.arena_bytes,
        naive_bytes: layout.naive_bytes,
        lower_bound_bytes: layout.lower_bound_bytes,
        weights,
        transform_weights,
        weight_buffers,
        weights_bytes,
        sub_batch_sizes,
        launches: Vec::new(),
        textures: Textures::default(),
    };
    let (launches, ranges, textures) = launch::build(graph, &plan, limits);
    for (sub, range) in plan.sub_batch_sizes.iter_mut().zip(ranges) {
        sub.launches = range;
    }
    plan.launches = launches;
    plan.textures = textures;
    Ok(plan)
}

/// The sizes a plan of `sub` images per pass runs for a requested `batch` and the caller's
/// `extra` sizes, each planned ([`SubBatch`]): `sub` itself, the trailing pass of `batch`, and
/// each extra size (and its trailing pass, if it exceeds `sub`).
fn sub_batch_sizes(
    graph: &Graph,
    steps: &[Step],
    batch: usize,
    sub: usize,
    extra: &[usize],
) -> Result<Vec<SubBatch>> {
    let mut sizes: Vec<usize> = [sub, batch % sub]
        .into_iter()
        .chain(extra.iter().flat_map(|&s| [s.min(sub), s % sub]))
        .filter(|&s| s > 0)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
        .into_iter()
        .map(|images| {
            let convs = graph
                .ops
                .iter()
                .zip(steps)
                .map(|(op, step)| match (op, &step.conv) {
                    (Op::Conv(c), Some(cp)) if images != sub => {
                        kernel::conv_for_batch(cp, c, &graph.tensors, images).map(Some)
                    }
                    _ => Ok(step.conv),
                })
                .collect::<Result<_>>()?;
            Ok(SubBatch {
                images,
                convs,
                launches: 0..0,
            })
        })
        .collect()
}

impl Plan {
    /// Passes over the steps needed to run `requested_batch` images (the last may be partial).
    pub fn sub_batches(&self) -> usize {
        self.requested_batch.div_ceil(self.batch)
    }

    /// The planned sub-batch that runs `n` images (`1..=batch`): the smallest of
    /// [`Plan::sub_batch_sizes`] holding them. The images past `n` compute on whatever the
    /// input rows hold and are never read: no op mixes images.
    pub fn sub_batch_for(&self, n: usize) -> Option<&SubBatch> {
        self.sub_batch_sizes.iter().find(|s| s.images >= n)
    }

    /// The launches that run `n` images (`1..=batch`): those of [`Plan::sub_batch_for`]`(n)`.
    pub fn launches_for(&self, n: usize) -> &[Launch] {
        let sub = self
            .sub_batch_for(n)
            .or(self.sub_batch_sizes.last())
            .expect("a plan has at least one sub-batch size");
        &self.launches[sub.launches.clone()]
    }

    /// The distinct pipelines of the plan's launches, in first-use order: what a session
    /// creates (each a shader compile in the driver).
    pub fn pipelines(&self) -> Vec<&PipelineKey> {
        launch::pipelines(&self.launches)
    }

    /// Whether a launch binds weights buffer `i` itself (not only its texture copy): a
    /// session keeps the buffers that are, and drops the others once copied.
    pub fn buffer_bound(&self, i: usize) -> bool {
        self.launches.iter().any(|l| {
            l.bindings
                .iter()
                .any(|r| matches!(r, Resource::Weights(w) if w.buffer == i))
        })
    }

    /// Bytes of weights the device holds while the session lives: the weight buffers that
    /// launches bind and the texture copies the texture conv variant reads.
    pub fn resident_weight_bytes(&self) -> u64 {
        let dtype = self.precision.dtype();
        (0..self.weight_buffers.len())
            .map(|i| {
                let bytes = self.weight_buffers[i];
                let copy = Textures::weight_texels(bytes, dtype);
                u64::from(self.buffer_bound(i)) * bytes
                    + u64::from(self.textures.weights[i]) * launch::texture_bytes(copy, dtype)
            })
            .sum()
    }

    /// Bytes the device holds for this plan: the arena, the resident weights
    /// ([`Plan::resident_weight_bytes`]) and the staging textures.
    pub fn resident_bytes(&self) -> u64 {
        self.arena_bytes
            + self.resident_weight_bytes()
            + launch::texture_bytes(self.textures.staging_f32, Dtype::F32)
            + launch::texture_bytes(self.textures.staging_f16, Dtype::F16)
    }

    /// Multiply-adds of one image.
    pub fn macs_per_image(&self) -> u64 {
        self.steps.iter().map(|s| s.macs).sum::<u64>() / self.batch as u64
    }

    /// Multiply-adds the kernels execute for one image (Winograd's GEMMs do fewer).
    pub fn macs_executed_per_image(&self) -> u64 {
        self.steps.iter().map(|s| s.macs_executed).sum::<u64>() / self.batch as u64
    }

    /// `arena_bytes / lower_bound_bytes` (1.0 is optimal).
    pub fn arena_ratio(&self) -> f64 {
        self.arena_bytes as f64 / self.lower_bound_bytes.max(1) as f64
    }
}

/// Bytes in MiB, for messages.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests;
