//! The fused implicit-GEMM convolution (`shaders/conv.wgsl`).

use super::{Kernels, Shader, elem_offset, u32_of};
use crate::error::Error;
use crate::gpu::Dispatch;
use crate::graph::{ConvOp, TensorInfo, pad4};
use std::str::FromStr;

/// Which conv kernel runs an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvVariant {
    /// Tiles of A and B staged in workgroup memory (`conv_shared`): what real GPUs need.
    Shared,
    /// Register tiling only, no workgroup memory or barriers (`conv_register`): fastest on
    /// software rasterisers such as lavapipe.
    Register,
}

impl FromStr for ConvVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "shared" => Ok(ConvVariant::Shared),
            "register" => Ok(ConvVariant::Register),
            _ => Err(Error::Input(format!(
                "unknown conv variant `{s}`: use shared or register"
            ))),
        }
    }
}

// Tile sizes; they must match the `const`s in conv.wgsl (checked by a unit test below). They
// are WGSL `const`s rather than overrides because they size private register arrays, which WGSL
// only allows with constant expressions.
/// Register variant: pixels per invocation.
const RTM: u32 = 1;
/// Register variant: vec4 output columns per invocation.
const RTN4: u32 = 2;
/// Register variant: invocations per workgroup (the `RWG` override).
const RWG: u32 = 32;
/// Shared variant: pixels per workgroup tile.
const SBM: u32 = 64;
/// Shared variant: vec4 output columns per workgroup tile.
const SBN4: u32 = 16;

const FLAG_IN_ACT: u32 = 1;
const FLAG_RESIDUAL: u32 = 2;
const FLAG_RELU: u32 = 4;
const FLAG_SPLIT_RELU: u32 = 8;
/// Raster order of the workgroup tiles: M fastest when the weights are larger than the input
/// (see `tile_coords` in conv.wgsl).
const FLAG_M_FASTEST: u32 = 16;

/// Mirrors `Params` in conv.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    cout: u32,
    cin: u32,
    coutp4: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    in_off: u32,
    out_off: u32,
    res_off: u32,
    split_off: u32,
    at: u32,
    res_h: u32,
    res_w: u32,
    res_stride: u32,
    flags: u32,
    bias4: u32,
    act4: u32,
    cinp4: u32,
    tiles_n: u32,
    tiles: u32,
    _pad: [u32; 2],
}

impl Kernels {
    /// The variant [`Kernels::conv`] uses for this op: the forced one if any
    /// ([`Kernels::set_conv_variant`] or `RESNET_CONV_VARIANT`), else a per-shape heuristic.
    ///
    /// Heuristic: software adapters always get the register variant (measured faster on
    /// lavapipe for every ResNet shape: barriers become coroutine switches there). On GPUs the
    /// shared variant, except for GEMMs with fewer rows than a quarter of its 64-pixel tile
    /// (e.g. the classifier at batch 1), where most of a shared tile would be idle.
    pub fn conv_variant_for(&self, op: &ConvOp, tensors: &[TensorInfo], batch: u32) -> ConvVariant {
        if let Some(v) = self.conv_variant {
            return v;
        }
        let out = &tensors[op.output];
        let m = batch as usize * out.h * out.w;
        if self.software || m < SBM as usize / 4 {
            ConvVariant::Register
        } else {
            ConvVariant::Shared
        }
    }

    /// One fused convolution. `consts`: the op's slot of the weights buffer, laid out by
    /// [`Op::constants`](crate::graph::Op::constants).
    pub fn conv(
        &self,
        op: &ConvOp,
        tensors: &[TensorInfo],
        batch: u32,
        arena: &wgpu::Buffer,
        offsets: &[u64],
        consts: wgpu::BufferBinding<'_>,
    ) -> Dispatch {
        let ti = &tensors[op.input];
        let to = &tensors[op.output];
        let at = op.split.as_ref().map_or(op.cout, |s| s.at);
        assert_eq!(ti.c, op.cin, "{}: input channels", op.name);
        assert_eq!(to.c, at, "{}: output channels", op.name);
        assert!(at <= op.cout && op.cout > 0 && op.stride > 0);
        let coutp = pad4(op.cout);
        let k = op.kh * op.kw * op.cin;
        let m = batch as usize * to.h * to.w;
        let mut flags = 0;
        if op.in_act.is_some() {
            flags |= FLAG_IN_ACT;
        }
        if op.relu {
            flags |= FLAG_RELU;
        }
        if k * coutp > batch as usize * ti.len() {
            flags |= FLAG_M_FASTEST;
        }
        let mut params = Params {
            m: u32_of(m),
            cout: u32_of(op.cout),
            cin: u32_of(op.cin),
            coutp4: u32_of(coutp / 4),
            h: u32_of(ti.h),
            w: u32_of(ti.w),
            oh: u32_of(to.h),
            ow: u32_of(to.w),
            kh: u32_of(op.kh),
            kw: u32_of(op.kw),
            stride: u32_of(op.stride),
            pad: u32_of(op.pad),
            in_off: elem_offset(offsets, op.input),
            out_off: elem_offset(offsets, op.output),
            at: u32_of(at),
            bias4: u32_of(k * coutp / 4),
            act4: u32_of((k + 1) * coutp / 4),
            cinp4: u32_of(pad4(op.cin) / 4),
            ..Default::default()
        };
        if let Some(r) = &op.residual {
            let rt = &tensors[r.tensor];
            assert_eq!(rt.c, at, "{}: residual channels", op.name);
            assert!(
                r.stride > 0 && (to.h - 1) * r.stride < rt.h && (to.w - 1) * r.stride < rt.w,
                "{}: residual too small",
                op.name
            );
            flags |= FLAG_RESIDUAL;
            params.res_off = elem_offset(offsets, r.tensor);
            params.res_h = u32_of(rt.h);
            params.res_w = u32_of(rt.w);
            params.res_stride = u32_of(r.stride);
        }
        if let Some(s) = &op.split {
            assert_eq!(
                tensors[s.tensor].c,
                op.cout - at,
                "{}: split channels",
                op.name
            );
            if s.relu {
                flags |= FLAG_SPLIT_RELU;
            }
            params.split_off = elem_offset(offsets, s.tensor);
        }
        params.flags = flags;

        let variant = self.conv_variant_for(op, tensors, batch);
        let vec4 = op.cin.is_multiple_of(4);
        let is_1x1 = op.kh == 1
            && op.kw == 1
            && op.stride == 1
            && op.pad == 0
            && (to.h, to.w) == (ti.h, ti.w);
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let (entry, constants, tile_m, tile_n4) = match variant {
            ConvVariant::Register => (
                "conv_register",
                vec![
                    ("VEC4", flag(vec4)),
                    ("IS_1X1", flag(is_1x1)),
                    ("RWG", RWG as f64),
                ],
                RWG * RTM,
                RTN4,
            ),
            ConvVariant::Shared => (
                "conv_shared",
                vec![("VEC4", flag(vec4)), ("IS_1X1", flag(is_1x1))],
                SBM,
                SBN4,
            ),
        };
        params.tiles_n = params.coutp4.div_ceil(tile_n4);
        params.tiles = params
            .tiles_n
            .checked_mul(params.m.div_ceil(tile_m))
            .expect("conv grid too large");
        let pipeline = self.pipeline(Shader::Conv, entry, &constants, true);
        self.dispatch(
            &op.name,
            pipeline,
            bytemuck::bytes_of(&params),
            arena,
            Some(consts),
            params.tiles,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_constants_match_the_shader() {
        let src = Shader::Conv.source();
        for line in [
            format!("const RTM: u32 = {RTM}u;"),
            format!("const RTN4: u32 = {RTN4}u;"),
            format!("override RWG: u32 = {RWG}u;"),
            format!("const SBM: u32 = {SBM}u;"),
            format!("const SBN4: u32 = {SBN4}u;"),
            format!("const FLAG_IN_ACT: u32 = {FLAG_IN_ACT}u;"),
            format!("const FLAG_RESIDUAL: u32 = {FLAG_RESIDUAL}u;"),
            format!("const FLAG_RELU: u32 = {FLAG_RELU}u;"),
            format!("const FLAG_SPLIT_RELU: u32 = {FLAG_SPLIT_RELU}u;"),
            format!("const FLAG_M_FASTEST: u32 = {FLAG_M_FASTEST}u;"),
        ] {
            assert!(src.contains(&line), "conv.wgsl lacks `{line}`");
        }
        assert_eq!(size_of::<Params>(), 28 * 4);
    }
}
