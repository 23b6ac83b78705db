//! The convolution family (`shaders/conv/`): every conv is an implicit GEMM run by one of four
//! variants, each a WGSL file of its own plus a type here (`Variant`) that turns the plan's
//! [`ConvConfig`] into pipeline override constants; a Winograd conv adds the two transforms of
//! `winograd` around a batched GEMM of the same variants.

mod register;
mod shared;
mod split_k;
mod subgroup;
mod texture;
mod winograd;

pub use texture::ConvTextures;

use super::texture::TextureCopy;
use super::{Bindings, Kernels, Shader};
use crate::gpu::{Dispatch, Stage};
use crate::graph::{ConvOp, TensorInfo, pad4};
use crate::plan::kernel::{ConvAlgo, ConvConfig, ConvPlan, ConvVariant};
use crate::plan::{Dtype, Placement};

pub(crate) const FLAG_IN_ACT: u32 = 1;
pub(crate) const FLAG_RESIDUAL: u32 = 2;
pub(crate) const FLAG_RELU: u32 = 4;
pub(crate) const FLAG_SPLIT_RELU: u32 = 8;
pub(crate) const FLAG_M_FASTEST: u32 = 16;
pub(crate) const FLAG_NO_BIAS: u32 = 32;
pub(crate) const FLAG_OUT_F16: u32 = 64;
pub(crate) const FLAG_RES_F16: u32 = 128;

/// Mirrors `Params` in shaders/conv/common.wgsl (element offsets: see there).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
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
    pub a_batch: u32,
    pub c_batch: u32,
    pub w_batch: u32,
    pub tiles_y: u32,
    pub tiles_x: u32,
    pub alpha: u32,
    pub k_chunk: u32,
    pub splits: u32,
    pub _pad: u32,
}

/// A conv GEMM kernel: its shader and how the plan's configuration becomes its overrides.
pub(crate) trait Variant {
    const SHADER: Shader;
    const ENTRY: &'static str;
    const BINDINGS: Bindings;
    /// The variant's own override constants (the storage ones, `A_F16` and `W_F16`, are the
    /// caller's).
    fn constants(cfg: &ConvConfig) -> Vec<(&'static str, f64)>;
}

/// Where a conv step's operands live: the arena, the op's slot of the weights buffer (with its
/// storage type) and, for the texture variant, its textures.
#[derive(Clone, Debug)]
pub struct ConvIo<'a> {
    /// The activation arena.
    pub arena: &'a wgpu::Buffer,
    /// The op's slot of the weights buffer.
    pub consts: wgpu::BufferBinding<'a>,
    /// The storage type of the weights.
    pub weights: Dtype,
    /// The texture variant's textures; `None` for the other variants.
    pub textures: Option<ConvTextures<'a>>,
}

/// The arena placement (element offset and type) of every tensor a conv step touches.
pub struct ConvTensors<'a> {
    /// Indexed by graph `TensorId`.
    pub placements: &'a [Placement],
    /// The step's planned scratch: a Winograd conv's V and M, a split-K conv's partial sums.
    pub scratch: &'a [Placement],
}

pub(crate) fn u32_of(v: usize) -> u32 {
    u32::try_from(v).expect("the planner keeps shapes within u32")
}

fn offset(p: &Placement) -> u32 {
    u32::try_from(p.offset_elems()).expect("the planner keeps the arena within u32 elements")
}

fn flag(on: bool, f: u32) -> u32 {
    if on { f } else { 0 }
}

fn f16(d: Dtype) -> bool {
    d == Dtype::F16
}

impl Kernels {
    /// The dispatches of one conv step in the plan's configuration `plan` (from
    /// [`choose_conv`](crate::plan::kernel::choose_conv) for this op and batch): one GEMM for a
    /// direct conv (after the texture variant's input staging), input transform + batched
    /// GEMM + output transform for Winograd.
    pub fn conv_step(
        &self,
        plan: &ConvPlan,
        op: &ConvOp,
        tensors: &[TensorInfo],
        batch: u32,
        at: &ConvTensors<'_>,
        io: &ConvIo<'_>,
    ) -> Vec<Dispatch> {
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
            | flag(out16, FLAG_OUT_F16);
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
                let m = batch as usize * to.h * to.w;
                let g = &plan.gemm;
                assert_eq!(
                    (g.m as usize, g.n as usize, g.k as usize, g.batch),
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
                    return self.split_k(&op.name, g, params, a16, io, *partials);
                }
                let staged =
                    self.stage_for(g, &params, a16, io, (batch as usize * ti.h * ti.w) as u64);
                vec![self.gemm(&op.name, g, params, a16, io, staged)]
            }
            ConvAlgo::Winograd(tile) => {
                let [v, mm] = at.scratch else {
                    panic!("{}: a Winograd step has two scratch tensors", op.name);
                };
                let (v, mm) = (*v, *mm);
                self.winograd(
                    &op.name,
                    tile,
                    plan,
                    params,
                    a16,
                    io,
                    v,
                    mm,
                    tensors[op.output].c,
                )
            }
        }
    }

    /// The texture variant's input staging for a GEMM whose A starts at `params.in_off`:
    /// `pixels` pixels of `cinp` channels.
    fn stage_for(
        &self,
        g: &ConvConfig,
        params: &Params,
        a16: bool,
        io: &ConvIo<'_>,
        pixels: u64,
    ) -> Option<Stage> {
        if g.variant != ConvVariant::Texture {
            return None;
        }
        let tex = io
            .textures
            .as_ref()
            .expect("the texture variant needs textures");
        let elem = if a16 { 2 } else { 4 };
        Some(if params.cin.is_multiple_of(4) {
            // NHWC with 4k channels already is the texture's layout: copy the bytes.
            Stage::Copy(TextureCopy {
                buffer: io.arena.clone(),
                offset: u64::from(params.in_off) * elem,
                texels: pixels * u64::from(params.cin) / 4,
                texture: tex.staging(a16).clone(),
            })
        } else {
            Stage::Pack(Box::new(self.pack_texture(
                "pack input",
                io.arena,
                params.in_off,
                pixels as usize,
                params.cin as usize,
                tex.input,
            )))
        })
    }

    /// One GEMM dispatch of `cfg` with its uniform `params` (shapes and offsets filled in).
    fn gemm(
        &self,
        label: &str,
        cfg: &ConvConfig,
        mut params: Params,
        a16: bool,
        io: &ConvIo<'_>,
        stage: Option<Stage>,
    ) -> Dispatch {
        params.flags |= flag(cfg.m_fastest, FLAG_M_FASTEST);
        params.tiles_n = cfg.tiles_n;
        params.tiles = cfg.tiles;
        let storage = [
            ("A_F16", f64::from(u8::from(a16))),
            ("W_F16", f64::from(u8::from(f16(io.weights)))),
        ];
        // z: the GEMMs of a batch (Winograd's points), or split K's slices.
        let groups = [cfg.tiles, cfg.batch * cfg.splits];
        match cfg.variant {
            ConvVariant::Register => self
                .variant_dispatch::<register::Register>(label, cfg, &params, &storage, io, groups),
            ConvVariant::Shared => {
                self.variant_dispatch::<shared::Shared>(label, cfg, &params, &storage, io, groups)
            }
            ConvVariant::Subgroup => self
                .variant_dispatch::<subgroup::Subgroup>(label, cfg, &params, &storage, io, groups),
            ConvVariant::Texture => {
                let mut d = self.texture_dispatch(label, cfg, params, &storage, io, groups, a16);
                d.stage = stage;
                d
            }
        }
    }

    fn variant_dispatch<V: Variant>(
        &self,
        label: &str,
        cfg: &ConvConfig,
        params: &Params,
        storage: &[(&'static str, f64)],
        io: &ConvIo<'_>,
        groups: [u32; 2],
    ) -> Dispatch {
        let mut constants = V::constants(cfg);
        constants.extend_from_slice(storage);
        let pipeline = self.pipeline(V::SHADER, V::ENTRY, &constants, V::BINDINGS);
        self.dispatch(
            label,
            pipeline,
            bytemuck::bytes_of(params),
            io.arena,
            &[wgpu::BindingResource::Buffer(io.consts.clone())],
            groups,
        )
    }
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
