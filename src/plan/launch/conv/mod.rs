//! The convolution family (`shaders/conv/`): every conv is an implicit GEMM run by one of four
//! variants, each a WGSL file of its own plus a type here (a `Variant`) that turns the plan's
//! [`ConvConfig`] into pipeline override constants and its bindings; a Winograd conv adds the
//! two transforms of `winograd` around a batched GEMM of the same variants, a split-K conv a
//! reduction after it.

mod register;
mod shared;
mod split_k;
mod subgroup;
pub mod texture;
mod winograd;

use super::{Bindings, Emitter, PipelineKey, Resource, Shader, StagingCopy, offset, u32_of};
use crate::graph::{ConvOp, TensorInfo, pad4};
use crate::plan::kernel::{ConvAlgo, ConvConfig, ConvPlan, ConvVariant};
use crate::plan::{Dtype, Placement, WeightSlot};

/// `flags`: The v2 pre-activation on loaded inputs.
pub const FLAG_IN_ACT: u32 = 1;
/// `flags`: A residual added in the epilogue.
pub const FLAG_RESIDUAL: u32 = 2;
/// `flags`: ReLU in the epilogue.
pub const FLAG_RELU: u32 = 4;
/// `flags`: ReLU on the split output.
pub const FLAG_SPLIT_RELU: u32 = 8;
/// `flags`: Raster the workgroup tiles M fastest.
pub const FLAG_M_FASTEST: u32 = 16;
/// `flags`: No bias in the epilogue (a GEMM whose consumer adds it).
pub const FLAG_NO_BIAS: u32 = 32;
/// `flags`: The output (and split) tensor is f16.
pub const FLAG_OUT_F16: u32 = 64;
/// `flags`: The residual tensor is f16.
pub const FLAG_RES_F16: u32 = 128;
/// `flags`: `cout` or the split's `at` is not a multiple of 4, so some vec4 of output
/// channels straddles one of them (the epilogue's element-by-element path).
pub const FLAG_RAGGED: u32 = 256;

/// The conv family's uniform; mirrors `Params` in shaders/conv/common.wgsl (element offsets:
/// see there; `tests/shaders.rs` checks the layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // each field is described where the shader declares it
pub struct Params {
    pub m: u32,
    pub cout: u32,
    pub cin: u32,
    pub coutp: u32,
    pub h: u32,
    pub w: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    pub in_off: u32,
    pub out_off: u32,
    pub res_off: u32,
    pub split_off: u32,
    pub at: u32,
    pub res_h: u32,
    pub res_w: u32,
    pub res_stride: u32,
    pub flags: u32,
    pub bias: u32,
    pub act: u32,
    pub cinp: u32,
    pub tiles_n: u32,
    pub tiles: u32,
    pub w_texel: u32,
    pub a_stride: u32,
    pub c_stride: u32,
    pub w_stride: u32,
    pub tiles_y: u32,
    pub tiles_x: u32,
    pub alpha: u32,
    pub k_chunk: u32,
    pub splits: u32,
    pub _pad: u32,
}

/// A conv GEMM kernel: its shader, and how the plan's configuration becomes its override
/// constants and its bindings. Adding a variant: a .wgsl file, a type implementing this, and an
/// arm in the heuristic (`plan::kernel`).
pub(crate) trait Variant {
    const SHADER: Shader;
    const ENTRY: &'static str;
    const BINDINGS: Bindings;
    /// The variant's own override constants (the storage ones, `A_F16` and `W_F16`, are the
    /// caller's).
    fn constants(cfg: &ConvConfig) -> Vec<(&'static str, f64)>;
    /// The bindings after the arena (the op's constants; the texture variant adds its
    /// textures and the weights' texel offset in the uniform), and the staging of A that must
    /// run first.
    fn bindings(gemm: &mut Gemm<'_>) -> Vec<Resource> {
        vec![Resource::Weights(gemm.at.weights)]
    }
}

/// Where a conv step's operands live: every tensor's placement, the step's scratch, and the
/// op's slot of the weights buffers with their storage type.
pub struct ConvOperands<'a> {
    /// Indexed by graph `TensorId`.
    pub placements: &'a [Placement],
    /// The step's planned scratch: a Winograd conv's V and M, a split-K conv's partial sums.
    pub scratch: &'a [Placement],
    /// The op's constants.
    pub weights: WeightSlot,
    /// A Winograd conv's bias and pre-activation in a slot of their own, where `weights`
    /// holds U alone ([`Plan::transform_weights`](crate::plan::Plan::transform_weights)).
    pub transform_weights: Option<WeightSlot>,
    /// Their storage type.
    pub weights_dtype: Dtype,
}

/// One GEMM launch being built: its configuration, uniform and operands.
pub(crate) struct Gemm<'a> {
    pub label: String,
    pub cfg: &'a ConvConfig,
    pub params: Params,
    /// A (the conv's input, or Winograd's V) is f16.
    pub a16: bool,
    /// Pixels of A (rows of `cinp` channels) the texture variant stages.
    pub pixels: u64,
    pub at: &'a ConvOperands<'a>,
    /// Launches to emit before this one (the texture variant's packing).
    pub before: Vec<Before>,
    /// The texture copy before this launch.
    pub copy: Option<StagingCopy>,
}

/// A launch a GEMM's variant emits before it, in the same pass.
pub(crate) struct Before {
    pub label: String,
    pub pipeline: PipelineKey,
    pub uniform: Vec<u8>,
    pub bindings: Vec<Resource>,
    pub groups: [u32; 2],
}

fn flag(on: bool, f: u32) -> u32 {
    if on { f } else { 0 }
}

fn f16(d: Dtype) -> bool {
    d == Dtype::F16
}

/// Emits the launches of one conv step in the plan's configuration `plan`: one GEMM for a
/// direct conv (after the texture variant's input staging), GEMM + reduction for split K,
/// input transform + batched GEMM + output transform for Winograd.
pub fn launches(
    e: &mut Emitter,
    plan: &ConvPlan,
    op: &ConvOp,
    tensors: &[TensorInfo],
    images: usize,
    at: &ConvOperands<'_>,
) {
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    let split_at = op.split.as_ref().map_or(op.cout, |s| s.at);
    assert_eq!(ti.c, op.cin, "{}: input channels", op.name);
    assert_eq!(to.c, split_at, "{}: output channels", op.name);
    assert!(split_at <= op.cout && op.cout > 0 && op.stride > 0);
    let place = |t: usize| &at.placements[t];
    let mut params = Params {
        cout: u32_of(op.cout),
        cin: u32_of(op.cin),
        coutp: u32_of(pad4(op.cout)),
        h: u32_of(ti.h),
        w: u32_of(ti.w),
        oh: u32_of(to.h),
        ow: u32_of(to.w),
        kh: u32_of(op.kh),
        kw: u32_of(op.kw),
        stride: u32_of(op.stride),
        pad: u32_of(op.pad),
        in_off: offset(place(op.input)),
        out_off: offset(place(op.output)),
        at: u32_of(split_at),
        cinp: u32_of(pad4(op.cin)),
        ..Default::default()
    };
    let out16 = f16(place(op.output).dtype);
    params.flags = flag(op.in_act.is_some(), FLAG_IN_ACT)
        | flag(op.relu, FLAG_RELU)
        | flag(out16, FLAG_OUT_F16)
        | flag(
            !(op.cout.is_multiple_of(4) && split_at.is_multiple_of(4)),
            FLAG_RAGGED,
        );
    if let Some(r) = &op.residual {
        let rt = &tensors[r.tensor];
        assert_eq!(rt.c, split_at, "{}: residual channels", op.name);
        assert!(
            r.stride > 0 && (to.h - 1) * r.stride < rt.h && (to.w - 1) * r.stride < rt.w,
            "{}: residual too small",
            op.name
        );
        params.flags |= FLAG_RESIDUAL | flag(f16(place(r.tensor).dtype), FLAG_RES_F16);
        params.res_off = offset(place(r.tensor));
        params.res_h = u32_of(rt.h);
        params.res_w = u32_of(rt.w);
        params.res_stride = u32_of(r.stride);
    }
    if let Some(s) = &op.split {
        assert_eq!(
            tensors[s.tensor].c,
            op.cout - split_at,
            "{}: split channels",
            op.name
        );
        assert_eq!(
            place(s.tensor).dtype,
            place(op.output).dtype,
            "{}: both outputs share a type",
            op.name
        );
        params.flags |= flag(s.relu, FLAG_SPLIT_RELU);
        params.split_off = offset(place(s.tensor));
    }
    let k = op.kh * op.kw * op.cin;
    let coutp = pad4(op.cout);
    params.bias = u32_of(k * coutp);
    params.act = u32_of((k + 1) * coutp);
    let a16 = f16(place(op.input).dtype);
    match plan.algo {
        ConvAlgo::Direct | ConvAlgo::SplitK(_) => {
            let m = images * to.h * to.w;
            let g = &plan.gemm;
            assert_eq!(
                (g.m as usize, g.n as usize, g.k as usize, g.gemms),
                (m, op.cout, k, 1),
                "{}: kernel config for another shape",
                op.name
            );
            params.m = g.m;
            if let ConvAlgo::SplitK(splits) = plan.algo {
                let [partials] = at.scratch else {
                    panic!("{}: a split-K step has one scratch tensor", op.name);
                };
                assert_eq!(g.splits, splits, "{}: split count", op.name);
                return split_k::launches(e, &op.name, g, params, a16, at, *partials);
            }
            gemm(
                e,
                Gemm {
                    label: op.name.clone(),
                    cfg: g,
                    params,
                    a16,
                    pixels: (images * ti.h * ti.w) as u64,
                    at,
                    before: Vec::new(),
                    copy: None,
                },
            );
        }
        ConvAlgo::Winograd(tile) => {
            let [v, mm] = at.scratch else {
                panic!("{}: a Winograd step has two scratch tensors", op.name);
            };
            winograd::launches(e, &op.name, tile, plan, params, a16, at, *v, *mm);
        }
    }
}

/// The storage override constants of a kernel reading A of f16 (`a16`) and constants of
/// `weights`.
fn storage(a16: bool, weights: Dtype) -> [(&'static str, f64); 2] {
    [
        ("A_F16", f64::from(u8::from(a16))),
        ("W_F16", f64::from(u8::from(f16(weights)))),
    ]
}

/// Emits one GEMM launch of `g.cfg` with its uniform `g.params` (shapes and offsets filled in),
/// after whatever its variant stages first.
fn gemm(e: &mut Emitter, mut g: Gemm<'_>) {
    let cfg = g.cfg;
    g.params.flags |= flag(cfg.m_fastest, FLAG_M_FASTEST);
    g.params.tiles_n = cfg.tiles_n;
    g.params.tiles = cfg.tiles;
    // z: the GEMMs of a batch (Winograd's points), or split K's slices.
    let groups = [cfg.tiles, cfg.gemms * cfg.splits];
    let (key, bindings) = match cfg.variant {
        ConvVariant::Register => variant::<register::Register>(&mut g),
        ConvVariant::Shared => variant::<shared::Shared>(&mut g),
        ConvVariant::Subgroup => variant::<subgroup::Subgroup>(&mut g),
        ConvVariant::Texture => variant::<texture::Texture>(&mut g),
    };
    for b in std::mem::take(&mut g.before) {
        e.launch(b.label, b.pipeline, &b.uniform, b.bindings, b.groups, None);
    }
    e.launch(
        g.label,
        key,
        bytemuck::bytes_of(&g.params),
        bindings,
        groups,
        g.copy,
    );
}

fn variant<V: Variant>(g: &mut Gemm<'_>) -> (PipelineKey, Vec<Resource>) {
    let key = key::<V>(g.cfg, g.a16, g.at.weights_dtype);
    (key, V::bindings(g))
}

/// The pipeline of variant `V` running `cfg`, reading A of f16 (`a16`) and constants of
/// `weights`.
fn key<V: Variant>(cfg: &ConvConfig, a16: bool, weights: Dtype) -> PipelineKey {
    let mut constants = V::constants(cfg);
    constants.extend(storage(a16, weights));
    PipelineKey {
        shader: V::SHADER,
        entry: V::ENTRY,
        constants,
        bindings: V::BINDINGS,
    }
}

/// The storage pairs (A f16, constants' type) a plan gives a kernel: f32 plans read f32
/// everywhere; f16 plans read f16 constants, and f16 activations except the f32 ones (the
/// graph's input, Winograd F(4,3)'s tiles).
const STORAGE: [(bool, Dtype); 3] = [(false, Dtype::F32), (false, Dtype::F16), (true, Dtype::F16)];

/// Every pipeline the conv family's launches can carry: each GEMM variant's override
/// constants over every configuration the heuristic and the tuner give it (every shared tile
/// with and without split K; the texture variant's pixel counts; the register and subgroup
/// variants' one shape; vec4 loads, the 1x1 path and bounds checks on and off where the
/// variant has them as constants), the Winograd transforms, split K's reduction and the
/// texture variant's packing, each over every storage pair ([`STORAGE`]). A superset of any
/// plan's: not every combination arises from a ResNet's shapes.
pub(super) fn pipeline_space() -> Vec<PipelineKey> {
    use crate::plan::kernel::{
        REGISTER_COLS4, REGISTER_ROWS, REGISTER_WG, SHARED_TILES, SUBGROUP_COLS4, SUBGROUP_ROWS,
        TEXTURE_COLS4, TEXTURE_ROWS, TEXTURE_WG,
    };
    // The shape-only fields do not reach the pipeline.
    let config = |variant, wg, rows, tile_n4, cols4, k_step| ConvConfig {
        variant,
        wg,
        tile_m: wg * rows,
        rows,
        tile_n4,
        cols4,
        k_step,
        splits: 1,
        vec4: true,
        is_1x1: false,
        checks: true,
        m_fastest: false,
        m: 1,
        n: 1,
        k: 1,
        tiles_n: 1,
        tiles: 1,
        gemms: 1,
    };
    let mut configs = Vec::new();
    for flags in 0..8u8 {
        let (vec4, is_1x1, checks) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
        for t in SHARED_TILES {
            for splits in [1, 2] {
                configs.push(ConvConfig {
                    tile_m: t.bm(),
                    splits,
                    vec4,
                    is_1x1,
                    checks,
                    ..config(
                        ConvVariant::Shared,
                        t.invocations(),
                        t.tm,
                        t.bn4(),
                        t.tn4,
                        t.bk,
                    )
                });
            }
        }
        configs.push(ConvConfig {
            vec4,
            is_1x1,
            checks,
            ..config(
                ConvVariant::Register,
                REGISTER_WG,
                REGISTER_ROWS,
                REGISTER_COLS4,
                REGISTER_COLS4,
                0,
            )
        });
    }
    for (rows, _) in TEXTURE_ROWS {
        configs.push(config(
            ConvVariant::Texture,
            TEXTURE_WG,
            rows,
            TEXTURE_COLS4,
            TEXTURE_COLS4,
            0,
        ));
    }
    configs.push(config(
        ConvVariant::Subgroup,
        super::workgroup_size(subgroup::Subgroup::ENTRY),
        SUBGROUP_ROWS,
        SUBGROUP_COLS4,
        TEXTURE_COLS4.min(SUBGROUP_COLS4),
        0,
    ));
    let mut keys = Vec::new();
    for (a16, weights) in STORAGE {
        for cfg in &configs {
            keys.push(match cfg.variant {
                ConvVariant::Register => key::<register::Register>(cfg, a16, weights),
                ConvVariant::Shared => key::<shared::Shared>(cfg, a16, weights),
                ConvVariant::Subgroup => key::<subgroup::Subgroup>(cfg, a16, weights),
                ConvVariant::Texture => key::<texture::Texture>(cfg, a16, weights),
            });
        }
        for entry in ["winograd_input", "winograd_output"] {
            keys.push(winograd::transform_key(entry, storage(a16, weights)));
        }
    }
    keys.extend([Dtype::F32, Dtype::F16].map(split_k::reduce_key));
    keys.push(texture::pack_key());
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_mirror_the_shader() {
        // 36 u32 fields, as `Params` in common.wgsl (checked against the parsed module in
        // tests/shaders.rs).
        assert_eq!(size_of::<Params>(), 36 * 4);
    }
}
