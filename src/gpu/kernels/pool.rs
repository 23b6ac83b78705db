//! Max pool and global average pool (`shaders/pool.wgsl`, after `shaders/nhwc.wgsl`).

use super::{Bindings, Kernels, Shader, elem_offset, u32_of};
use crate::gpu::Dispatch;
use crate::graph::{GlobalAvgPoolOp, MaxPoolOp, PadValue, TensorInfo, pad4};
use crate::plan::{Dtype, Placement};

const FLAG_ACT: u32 = 1;
const FLAG_IN_F16: u32 = 2;
const FLAG_OUT_F16: u32 = 4;
const FLAG_W_F16: u32 = 8;

/// The dtype flags of an op reading `input`, writing `output`, with constants of `weights`.
pub(super) fn dtype_flags(input: &Placement, output: &Placement, weights: Dtype) -> u32 {
    let f = |on: bool, bit: u32| if on { bit } else { 0 };
    f(input.dtype == Dtype::F16, FLAG_IN_F16)
        | f(output.dtype == Dtype::F16, FLAG_OUT_F16)
        | f(weights == Dtype::F16, FLAG_W_F16)
}

/// Mirrors `Params` in pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    total: u32,
    c: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    size: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    in_off: u32,
    out_off: u32,
    pad_value: f32,
    flags: u32,
    cp: u32,
    _pad0: u32,
}

/// Invocations per workgroup of both pool entry points.
const WG: u32 = 64;

impl Kernels {
    /// A max pool; the output size is the output tensor's. `placements`: every tensor's
    /// arena placement (offset, dtype), indexed by TensorId.
    pub fn max_pool(
        &self,
        op: &MaxPoolOp,
        tensors: &[TensorInfo],
        batch: u32,
        arena: &wgpu::Buffer,
        placements: &[Placement],
    ) -> Dispatch {
        let ti = &tensors[op.input];
        let to = &tensors[op.output];
        assert_eq!(ti.c, to.c, "{}: channels", op.name);
        assert!(op.size > 0 && op.stride > 0);
        let total = u32_of(batch as usize * to.h * to.w * to.c.div_ceil(4));
        let params = Params {
            total,
            c: u32_of(to.c),
            h: u32_of(ti.h),
            w: u32_of(ti.w),
            oh: u32_of(to.h),
            ow: u32_of(to.w),
            size: u32_of(op.size),
            stride: u32_of(op.stride),
            pad_top: u32_of(op.pad_top),
            pad_left: u32_of(op.pad_left),
            in_off: elem_offset(placements, op.input),
            out_off: elem_offset(placements, op.output),
            pad_value: match op.pad_value {
                PadValue::NegInf => f32::NEG_INFINITY,
                PadValue::Zero => 0.0,
            },
            flags: dtype_flags(&placements[op.input], &placements[op.output], Dtype::F32),
            ..Default::default()
        };
        let pipeline = self.pipeline(Shader::Pool, "max_pool", &[], Bindings::Arena);
        self.dispatch(
            &op.name,
            pipeline,
            bytemuck::bytes_of(&params),
            arena,
            &[],
            [total.div_ceil(WG), 1],
        )
    }

    /// Mean over H and W (of the fused `bn_relu(x)` with `in_act`). `consts`: the op's slot
    /// of the weights buffer (`scale [pad4(c)] | shift [pad4(c)]`, of type `weights`), `None`
    /// without `in_act`.
    #[allow(clippy::too_many_arguments)]
    pub fn global_avg_pool(
        &self,
        op: &GlobalAvgPoolOp,
        tensors: &[TensorInfo],
        batch: u32,
        arena: &wgpu::Buffer,
        placements: &[Placement],
        consts: Option<wgpu::BufferBinding<'_>>,
        weights: Dtype,
    ) -> Dispatch {
        let ti = &tensors[op.input];
        let to = &tensors[op.output];
        assert_eq!(
            (to.h, to.w, to.c),
            (1, 1, ti.c),
            "{}: output shape",
            op.name
        );
        assert_eq!(
            op.in_act.is_some(),
            consts.is_some(),
            "{}: constants are needed exactly when there is an in_act",
            op.name
        );
        // A workgroup of 64 invocations per 256 channels of an image.
        let groups = u32_of(batch as usize * ti.c.div_ceil(4 * WG as usize));
        let params = Params {
            total: groups,
            c: u32_of(ti.c),
            h: u32_of(ti.h),
            w: u32_of(ti.w),
            oh: 1,
            ow: 1,
            in_off: elem_offset(placements, op.input),
            out_off: elem_offset(placements, op.output),
            flags: (u32::from(op.in_act.is_some()) * FLAG_ACT)
                | dtype_flags(&placements[op.input], &placements[op.output], weights),
            cp: u32_of(pad4(ti.c)),
            ..Default::default()
        };
        let consts = consts.unwrap_or_else(|| self.dummy_consts());
        let pipeline = self.pipeline(Shader::Pool, "global_avg_pool", &[], Bindings::Consts);
        self.dispatch(
            &op.name,
            pipeline,
            bytemuck::bytes_of(&params),
            arena,
            &[wgpu::BindingResource::Buffer(consts)],
            [groups, 1],
        )
    }
}
