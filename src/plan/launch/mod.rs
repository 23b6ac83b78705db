//! Launches: what the GPU runs, as data. The last stage of planning turns every step of every
//! planned sub-batch size into [`Launch`]es: the pipeline ([`PipelineKey`]: shader, entry
//! point, override constants, binding layout), the uniform's bytes, what each binding is
//! (the arena, a weight range, a texture), the workgroup grid, and the texture copy that must
//! run first. `src/gpu` creates each distinct pipeline once and replays the launches; it
//! decides nothing.
//!
//! Binding conventions, shared by every shader:
//! * `@binding(0)`: the launch's uniform ([`Launch::uniform`]);
//! * `@binding(1)`: the whole activation arena as one read_write storage buffer; tensors are
//!   addressed by element offsets in the uniform (a second, read-only view of the same buffer
//!   in the same dispatch would be a usage conflict);
//! * then [`Launch::bindings`]: the op's weight range, and for the texture conv variant its
//!   staging and weights textures.
//!
//! One module per kernel family: [`conv`] (with one file per GEMM variant), [`pool`],
//! [`elementwise`].

pub mod conv;
pub mod elementwise;
pub mod pool;

use super::{Dtype, Limits, Placement, Plan, WeightSlot};
use crate::graph::{Graph, Op};

/// A shader module: the WGSL files of one kernel, joined by plain concatenation (shared parts
/// first), so that every kernel is a file of its own without any templating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shader {
    /// `shaders/conv/register.wgsl`
    ConvRegister,
    /// `shaders/conv/shared.wgsl` (also split K's reduction)
    ConvShared,
    /// `shaders/conv/texture.wgsl`
    ConvTexture,
    /// `shaders/conv/subgroup.wgsl`
    ConvSubgroup,
    /// `shaders/conv/winograd.wgsl`: the transforms
    Winograd,
    /// `shaders/conv/pack.wgsl`: the texture variant's padded input
    Pack,
    /// `shaders/pool.wgsl`
    Pool,
    /// `shaders/elementwise.wgsl`
    Elementwise,
}

macro_rules! conv_source {
    ($io:literal, $kernel:literal) => {
        concat!(
            include_str!("../../../shaders/conv/common.wgsl"),
            include_str!(concat!("../../../shaders/conv/", $io)),
            include_str!(concat!("../../../shaders/conv/", $kernel))
        )
    };
}

impl Shader {
    /// Every module.
    pub const ALL: [Shader; 8] = [
        Shader::ConvRegister,
        Shader::ConvShared,
        Shader::ConvTexture,
        Shader::ConvSubgroup,
        Shader::Winograd,
        Shader::Pack,
        Shader::Pool,
        Shader::Elementwise,
    ];

    /// The module's WGSL.
    pub fn source(self) -> &'static str {
        match self {
            Shader::ConvRegister => conv_source!("io32.wgsl", "register.wgsl"),
            Shader::ConvShared => conv_source!("io32.wgsl", "shared.wgsl"),
            Shader::ConvTexture => conv_source!("io32.wgsl", "texture.wgsl"),
            Shader::ConvSubgroup => conv_source!("io64.wgsl", "subgroup.wgsl"),
            Shader::Winograd => conv_source!("io32.wgsl", "winograd.wgsl"),
            Shader::Pack => include_str!("../../../shaders/conv/pack.wgsl"),
            Shader::Pool => concat!(
                include_str!("../../../shaders/nhwc.wgsl"),
                include_str!("../../../shaders/pool.wgsl")
            ),
            Shader::Elementwise => concat!(
                include_str!("../../../shaders/nhwc.wgsl"),
                include_str!("../../../shaders/elementwise.wgsl")
            ),
        }
    }

    /// Device features the module needs beyond core WebGPU.
    pub fn features(self) -> wgpu::Features {
        match self {
            Shader::ConvSubgroup => wgpu::Features::SUBGROUP | wgpu::Features::SHADER_INT64,
            _ => wgpu::Features::empty(),
        }
    }

    /// The module's name (`ConvShared`, ...).
    pub fn name(self) -> String {
        format!("{self:?}")
    }

    /// Byte offset of the `flags` field in the module's uniform, for the modules that declare
    /// the [`FLAGS`] override (every one but the texture packing).
    pub fn flags_offset(self) -> Option<usize> {
        match self {
            Shader::ConvRegister
            | Shader::ConvShared
            | Shader::ConvTexture
            | Shader::ConvSubgroup
            | Shader::Winograd => Some(std::mem::offset_of!(conv::Params, flags)),
            Shader::Pool => Some(std::mem::offset_of!(pool::Params, flags)),
            Shader::Elementwise => Some(std::mem::offset_of!(elementwise::Params, flags)),
            Shader::Pack => None,
        }
    }
}

/// The override constant of the modules with a `flags` uniform field: the flags any launch of
/// the pipeline sets. The shaders test a flag as `flags & FLAGS`, so a flag outside it is a
/// constant false when the driver compiles the pipeline and its code compiles out: the
/// residual, split, f16 and ragged-channel paths of a pipeline whose launches never take
/// them (lavapipe compiles at the first dispatch; those paths were a large share of it).
pub const FLAGS: &str = "FLAGS";

/// [`FLAGS`] with every flag: the shaders' default, which keeps every path.
pub const ALL_FLAGS: u32 = u32::MAX;

/// Gives each launch of a module with a `flags` field the [`FLAGS`] constant of its pipeline:
/// the union of the flags of every launch (of every sub-batch size) that shares the pipeline
/// otherwise, so that the specialisation adds no pipeline.
pub fn specialize_flags(launches: &mut [Launch]) {
    let mut union: std::collections::HashMap<PipelineKey, u32> = Default::default();
    for l in launches.iter() {
        if let Some(f) = l.flags() {
            *union.entry(l.pipeline.clone()).or_default() |= f;
        }
    }
    for l in launches.iter_mut() {
        if let Some(&f) = union.get(&l.pipeline) {
            l.pipeline.constants.push((FLAGS, f64::from(f)));
        }
    }
}

/// The bind group layout of a pipeline: binding 0 the uniform, 1 the arena, then these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bindings {
    /// uniform | arena
    Arena,
    /// uniform | arena | consts
    Consts,
    /// uniform | arena | consts | input texture | weights texture
    Textures,
    /// uniform | arena | rgba32float storage texture (texture packing)
    Pack,
}

impl Bindings {
    /// Every layout.
    pub const ALL: [Bindings; 4] = [
        Bindings::Arena,
        Bindings::Consts,
        Bindings::Textures,
        Bindings::Pack,
    ];

    /// The layout's bindings, by binding number: what `src/gpu` makes wgpu's layout of, and
    /// what the shader translation ([`crate::plan::emit`]) assigns the backends' slots from,
    /// as wgpu's backends do.
    pub fn kinds(self) -> &'static [BindingKind] {
        use BindingKind::*;
        const RW: BindingKind = Storage { read_only: false };
        const RO: BindingKind = Storage { read_only: true };
        match self {
            Bindings::Arena => &[Uniform, RW],
            Bindings::Consts => &[Uniform, RW, RO],
            Bindings::Textures => &[Uniform, RW, RO, SampledTexture, SampledTexture],
            Bindings::Pack => &[Uniform, RW, StorageTexture],
        }
    }

    /// The resources after the uniform and the arena that a launch of this layout binds.
    pub fn extra(self) -> usize {
        self.kinds().len() - 2
    }
}

/// What one binding of a [`Bindings`] layout is (all visible to compute only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// A uniform buffer.
    Uniform,
    /// A storage buffer.
    Storage {
        /// Read-only (`var<storage, read>`).
        read_only: bool,
    },
    /// A 2D float texture, not filterable, read with `textureLoad`.
    SampledTexture,
    /// A write-only rgba32float 2D storage texture.
    StorageTexture,
}

/// What identifies a compute pipeline: a session creates one per distinct key.
#[derive(Clone, Debug)]
pub struct PipelineKey {
    /// The module.
    pub shader: Shader,
    /// The entry point (unique across modules).
    pub entry: &'static str,
    /// Override constants, in the order the kernel lists them.
    pub constants: Vec<(&'static str, f64)>,
    /// The bind group layout.
    pub bindings: Bindings,
}

impl PipelineKey {
    fn bits(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.constants.iter().map(|&(k, v)| (k, v.to_bits()))
    }

    /// The key with [`FLAGS`] at [`ALL_FLAGS`] where it has the constant: the pipeline with
    /// every flag's code, of which a plan's specialisation only removes some.
    pub fn generic(&self) -> PipelineKey {
        let mut k = self.clone();
        for (name, v) in &mut k.constants {
            if *name == FLAGS {
                *v = f64::from(ALL_FLAGS);
            }
        }
        k
    }

    /// A name usable as a file stem: `conv_shared.WG_M=16.WG_N=8...` (no spaces, no slashes).
    pub fn file_stem(&self) -> String {
        std::iter::once(self.entry.to_string())
            .chain(self.constants.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl PartialEq for PipelineKey {
    fn eq(&self, other: &Self) -> bool {
        self.shader == other.shader
            && self.entry == other.entry
            && self.bindings == other.bindings
            && self.bits().eq(other.bits())
    }
}

impl Eq for PipelineKey {}

impl std::hash::Hash for PipelineKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.shader.hash(state);
        self.entry.hash(state);
        self.bindings.hash(state);
        for b in self.bits() {
            b.hash(state);
        }
    }
}

impl std::fmt::Display for PipelineKey {
    /// `entry{NAME=value,...}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let constants: Vec<String> = self
            .constants
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "{}{{{}}}", self.entry, constants.join(","))
    }
}

/// What a binding after the uniform and the arena is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A range of a weights buffer (an op's slot).
    Weights(WeightSlot),
    /// No constants (a global average pool without a fused activation): a 16-byte stand-in
    /// the shader never reads.
    NoWeights,
    /// The texture variant's staging texture of this type (sampled), holding the GEMM's A.
    StagingTexture(Dtype),
    /// The texture copy of weights buffer `i` (sampled).
    WeightsTexture(usize),
    /// The f32 staging texture as a storage texture, of which `pack_texture` writes the first
    /// `texels` texels.
    PackTarget {
        /// Texels written (the staging texture holds at least these).
        texels: u64,
    },
}

/// A copy of `texels` vec4 of `dtype` from the arena at `offset_bytes` into the first texels
/// of the staging texture of that type: the texture variant's input, recorded outside compute
/// passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagingCopy {
    /// Byte offset in the arena.
    pub offset_bytes: u64,
    /// vec4 texels copied.
    pub texels: u64,
    /// The texels' type (and so which staging texture).
    pub dtype: Dtype,
}

/// One compute dispatch, as data.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// Images of the sub-batch size it belongs to ([`super::SubBatch::images`]).
    pub sub_batch: usize,
    /// The plan step (op) it belongs to.
    pub step: usize,
    /// Its label (op and kernel), for profiles and wgpu's messages.
    pub label: String,
    /// The pipeline.
    pub pipeline: PipelineKey,
    /// The uniform buffer's bytes (`@binding(0)`).
    pub uniform: Vec<u8>,
    /// What `@binding(2)` onwards are, in order (`pipeline.bindings.extra()` of them).
    pub bindings: Vec<Resource>,
    /// The workgroup grid (x, y, z), within the device's per-dimension limit.
    pub workgroups: [u32; 3],
    /// A texture copy recorded before the launch's compute pass.
    pub copy_before: Option<StagingCopy>,
}

impl Launch {
    /// The `flags` field of the launch's uniform, for the modules that have one
    /// ([`Shader::flags_offset`]).
    pub fn flags(&self) -> Option<u32> {
        let at = self.pipeline.shader.flags_offset()?;
        let bytes = self.uniform.get(at..at + 4)?;
        Some(u32::from_ne_bytes(bytes.try_into().ok()?))
    }
}

/// The textures the texture conv variant reads: the staging textures' sizes (vec4 texels;
/// 0: none) and which weights buffers get a texture copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Textures {
    /// rgba32float staging texture (f32 inputs and packed ones).
    pub staging_f32: u64,
    /// rgba16float staging texture (f16 inputs).
    pub staging_f16: u64,
    /// Indexed by weights buffer: whether a texture conv reads it (as a texture copy).
    pub weights: Vec<bool>,
}

/// Texels per texture row; must match `TEX_WIDTH` in texture.wgsl and pack.wgsl. 4096 texels
/// of 8 or 16 bytes keep buffer-to-texture copies aligned (`bytes_per_row` must be a multiple
/// of 256).
pub const TEXTURE_WIDTH: u32 = 4096;

/// Rows a texture of `texels` needs.
pub fn texture_rows(texels: u64) -> u64 {
    texels.div_ceil(u64::from(TEXTURE_WIDTH)).max(1)
}

impl Textures {
    /// Bytes of a vec4 texel of `dtype`.
    pub fn texel_bytes(dtype: Dtype) -> u64 {
        4 * dtype.bytes()
    }

    /// Texels of the texture copy of a weights buffer of `bytes` holding `dtype` values.
    pub fn weight_texels(bytes: u64, dtype: Dtype) -> u64 {
        bytes / Self::texel_bytes(dtype)
    }

    /// Whether every texture fits the device's largest 2D texture.
    pub fn fit(&self, weight_buffers: &[u64], weights: Dtype, limits: &Limits) -> bool {
        let fits = |texels: u64| {
            texels == 0
                || (TEXTURE_WIDTH <= limits.max_texture_dimension_2d
                    && texture_rows(texels) <= u64::from(limits.max_texture_dimension_2d))
        };
        fits(self.staging_f32)
            && fits(self.staging_f16)
            && self
                .weights
                .iter()
                .zip(weight_buffers)
                .all(|(&used, &bytes)| !used || fits(Self::weight_texels(bytes, weights)))
    }
}

/// Bytes of a texture holding `texels` vec4 of `dtype` (0: none), whole rows.
pub fn texture_bytes(texels: u64, dtype: Dtype) -> u64 {
    if texels == 0 {
        return 0;
    }
    texture_rows(texels) * u64::from(TEXTURE_WIDTH) * Textures::texel_bytes(dtype)
}

/// Collects the launches of one step of one sub-batch size.
pub struct Emitter {
    sub_batch: usize,
    step: usize,
    max_groups_per_dimension: u32,
    /// The launches so far.
    pub launches: Vec<Launch>,
}

impl Emitter {
    /// Launches for step `step` of the sub-batch of `sub_batch` images, grids folded within
    /// `max_groups_per_dimension`.
    pub fn new(sub_batch: usize, step: usize, max_groups_per_dimension: u32) -> Emitter {
        Emitter {
            sub_batch,
            step,
            max_groups_per_dimension,
            launches: Vec::new(),
        }
    }

    /// Adds a launch of `groups[0]` workgroups (folded into x and y), `groups[1]` along z.
    pub fn launch(
        &mut self,
        label: String,
        pipeline: PipelineKey,
        uniform: &[u8],
        bindings: Vec<Resource>,
        groups: [u32; 2],
        copy_before: Option<StagingCopy>,
    ) {
        assert_eq!(
            bindings.len(),
            pipeline.bindings.extra(),
            "{label}: bindings for layout {:?}",
            pipeline.bindings
        );
        let workgroups = grid(groups[0], groups[1], self.max_groups_per_dimension);
        self.launches.push(Launch {
            sub_batch: self.sub_batch,
            step: self.step,
            label,
            pipeline,
            uniform: uniform.to_vec(),
            bindings,
            workgroups,
            copy_before,
        });
    }
}

/// `groups` workgroups as a grid within `max` per dimension: folded into y when needed (shaders
/// linearise `wid.y * num_workgroups.x + wid.x` and drop the overshoot); `z` independent copies
/// (batched GEMMs, split K's slices) along z. The planner's addressing limit keeps `groups`
/// far below the WebGPU minimum of 65535^2.
pub fn grid(groups: u32, z: u32, max: u32) -> [u32; 3] {
    let max = max.max(1);
    let x = groups.clamp(1, max);
    let y = groups.div_ceil(x);
    debug_assert!(
        y <= max && z <= max,
        "{groups} x {z} workgroups exceed the grid"
    );
    [x, y.clamp(1, max), z.clamp(1, max)]
}

/// Invocations per workgroup of the entry points whose size is fixed in their shader (the
/// GEMM variants' come from override constants): one table, which the grids here use and
/// `tests/shaders.rs` checks against every shader's `@workgroup_size`.
pub const WORKGROUP_SIZES: [(&str, u32); 8] = [
    ("bn_relu", 256),
    ("max_pool", 64),
    ("global_avg_pool", 64),
    ("pack_texture", 64),
    ("splitk_reduce", 64),
    ("winograd_input", 64),
    ("winograd_output", 64),
    ("conv_subgroup", 8),
];

/// The fixed workgroup size of `entry` ([`WORKGROUP_SIZES`]).
pub fn workgroup_size(entry: &str) -> u32 {
    WORKGROUP_SIZES
        .iter()
        .find(|(e, _)| *e == entry)
        .map(|&(_, n)| n)
        .unwrap_or_else(|| panic!("{entry} has no fixed workgroup size"))
}

/// Checked `usize -> u32` for shapes written to uniforms.
pub(crate) fn u32_of(v: usize) -> u32 {
    u32::try_from(v).expect("the planner keeps shapes within u32")
}

/// Element offset (in its own dtype) of a placed tensor, as the uniforms hold it.
pub(crate) fn offset(p: &Placement) -> u32 {
    u32::try_from(p.offset_elems()).expect("the planner keeps the arena within u32 elements")
}

/// The launches of every step of `plan` for every planned sub-batch size, in size order then
/// step order, with each size's range; and the textures they read.
pub(super) fn build(
    graph: &Graph,
    plan: &Plan,
    limits: &Limits,
) -> (Vec<Launch>, Vec<std::ops::Range<usize>>, Textures) {
    let weights = plan.precision.dtype();
    let mut launches = Vec::new();
    let mut ranges = Vec::new();
    for sub in &plan.sub_batch_sizes {
        let start = launches.len();
        for (step, ((op, slot), planned)) in graph
            .ops
            .iter()
            .zip(&plan.weights)
            .zip(&sub.convs)
            .enumerate()
        {
            let mut e = Emitter::new(sub.images, step, limits.max_workgroups_per_dimension);
            let consts = (slot.size_bytes > 0).then_some(*slot);
            match op {
                Op::Conv(o) => {
                    let cp = planned.expect("the plan has a conv plan for every conv step");
                    let scratch: Vec<Placement> = plan.steps[step]
                        .scratch
                        .iter()
                        .map(|&t| plan.tensors[t])
                        .collect();
                    let at = conv::ConvOperands {
                        placements: &plan.tensors,
                        scratch: &scratch,
                        weights: consts.expect("a conv has weights"),
                        transform_weights: plan.transform_weights[step],
                        weights_dtype: weights,
                    };
                    conv::launches(&mut e, &cp, o, &graph.tensors, sub.images, &at);
                }
                Op::MaxPool(o) => {
                    pool::max_pool(&mut e, o, &graph.tensors, sub.images, &plan.tensors)
                }
                Op::GlobalAvgPool(o) => pool::global_avg_pool(
                    &mut e,
                    o,
                    &graph.tensors,
                    sub.images,
                    &plan.tensors,
                    consts,
                    weights,
                ),
                Op::BnRelu(o) => elementwise::bn_relu(
                    &mut e,
                    o,
                    &graph.tensors,
                    sub.images,
                    &plan.tensors,
                    consts.expect("bn_relu has constants"),
                    weights,
                ),
            }
            launches.extend(e.launches);
        }
        ranges.push(start..launches.len());
    }
    specialize_flags(&mut launches);
    let textures = textures(&launches, plan.weight_buffers.len());
    (launches, ranges, textures)
}

/// The textures `launches` read: the staging textures as large as their largest copy or
/// packing, and which of `weight_buffers` buffers a texture conv reads.
pub fn textures(launches: &[Launch], weight_buffers: usize) -> Textures {
    let mut t = Textures {
        weights: vec![false; weight_buffers],
        ..Default::default()
    };
    for l in launches {
        if let Some(c) = l.copy_before {
            match c.dtype {
                Dtype::F32 => t.staging_f32 = t.staging_f32.max(c.texels),
                Dtype::F16 => t.staging_f16 = t.staging_f16.max(c.texels),
            }
        }
        for r in &l.bindings {
            match *r {
                Resource::WeightsTexture(b) => t.weights[b] = true,
                Resource::PackTarget { texels } => t.staging_f32 = t.staging_f32.max(texels),
                _ => {}
            }
        }
    }
    t
}

/// Every pipeline a plan's launches can carry, each once: every kernel's override constants
/// over every configuration the heuristic and the tuner give it, with every storage pair of
/// f32 and f16 plans (see `conv::pipeline_space`), and the pools and `bn_relu`. A superset
/// of any one plan's [`Plan::pipelines`] (not every combination arises from a ResNet's
/// shapes) up to [`FLAGS`], which the space holds at [`ALL_FLAGS`] (a plan's value only
/// removes code: compare with [`PipelineKey::generic`]); `tests/emit.rs` translates all of it
/// for every backend.
pub fn pipeline_space() -> Vec<PipelineKey> {
    let mut keys = conv::pipeline_space();
    keys.extend([
        pool::max_pool_key(),
        pool::global_avg_pool_key(),
        elementwise::bn_relu_key(),
    ]);
    for k in &mut keys {
        if k.shader.flags_offset().is_some() {
            k.constants.push((FLAGS, f64::from(ALL_FLAGS)));
        }
    }
    keys
}

/// Distinct pipelines of `launches`, in first-use order.
pub fn pipelines(launches: &[Launch]) -> Vec<&PipelineKey> {
    let mut seen = std::collections::HashSet::new();
    launches
        .iter()
        .map(|l| &l.pipeline)
        .filter(|k| seen.insert(*k))
        .collect()
}
