//! Max pool and global average pool (`shaders/pool.wgsl`).

use super::{Bindings, Kernels, Shader, elem_offset, u32_of};
use crate::gpu::Dispatch;
use crate::graph::{GlobalAvgPoolOp, MaxPoolOp, PadValue, TensorInfo, pad4};

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
    /// A max pool; the output size is the output tensor's.
    pub fn max_pool(
        &self,
        op: &MaxPoolOp,
        tensors: &[TensorInfo],
        batch: u32,
        arena: &wgpu::Buffer,
        offsets: &[u64],
    ) -> Dispatch {
        let ti = &tensors[op.input];
        let to = &tensors[op.output];
        assert_eq!(ti.c, to.c, "{}: channels", op.name);
        assert!(op.size > 0 && op.stride > 0);
        let total = u32_of(batch as usize * to.len());
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
            in_off: elem_offset(offsets, op.input),
            out_off: elem_offset(offsets, op.output),
            pad_value: match op.pad_value {
                PadValue::NegInf => f32::NEG_INFINITY,
                PadValue::Zero => 0.0,
            },
            ..Default::default()
        };
        let pipeline = self.pipeline(Shader::Pool, "max_pool", &[], Bindings::Arena);
        self.dispatch(
            &op.name,
            pipeline,
            bytemuck::bytes_of(&params),
            arena,
            &[],
            total.div_ceil(WG),
        )
    }

    /// Mean over H and W (of the fused `bn_relu(x)` with `in_act`). `consts`: the op's slot
    /// of the weights buffer (`scale [pad4(c)] | shift [pad4(c)]`), `None` without `in_act`.
    pub fn global_avg_pool(
        &self,
        op: &GlobalAvgPoolOp,
        tensors: &[TensorInfo],
        batch: u32,
        arena: &wgpu::Buffer,
        offsets: &[u64],
        consts: Option<wgpu::BufferBinding<'_>>,
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
        let groups = u32_of(batch as usize * ti.c.div_ceil(WG as usize));
        let params = Params {
            total: groups,
            c: u32_of(ti.c),
            h: u32_of(ti.h),
            w: u32_of(ti.w),
            oh: 1,
            ow: 1,
            in_off: elem_offset(offsets, op.input),
            out_off: elem_offset(offsets, op.output),
            flags: u32::from(op.in_act.is_some()),
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
            groups,
        )
    }
}
