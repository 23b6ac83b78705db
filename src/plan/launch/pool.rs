//! Max pool and global average pool (`shaders/pool.wgsl`, after `shaders/nhwc.wgsl`).

use super::{Bindings, Emitter, PipelineKey, Resource, Shader, offset, u32_of};
use crate::graph::{GlobalAvgPoolOp, MaxPoolOp, PadValue, TensorInfo, pad4};
use crate::plan::{Dtype, Placement, WeightSlot};

/// `flags` of the pools: the global average pool's fused activation (pool.wgsl).
pub const POOL_ACT: u32 = 1;
/// `flags` of the NHWC kernels (pools, bn_relu): the input is f16 (nhwc.wgsl).
pub const NHWC_IN_F16: u32 = 2;
/// `flags` of the NHWC kernels: the output is f16.
pub const NHWC_OUT_F16: u32 = 4;
/// `flags` of the NHWC kernels: the constants are f16.
pub const NHWC_W_F16: u32 = 8;

/// `flags` of the NHWC kernels: C is not a multiple of 4 (4-channel loads and stores check
/// each channel).
pub const NHWC_RAGGED: u32 = 32;

/// The storage flags of an op over `c` channels reading `input`, writing `output`, with
/// constants of `weights`.
pub(crate) fn nhwc_flags(c: usize, input: &Placement, output: &Placement, weights: Dtype) -> u32 {
    let f = |on: bool, bit: u32| if on { bit } else { 0 };
    f(input.dtype == Dtype::F16, NHWC_IN_F16)
        | f(output.dtype == Dtype::F16, NHWC_OUT_F16)
        | f(weights == Dtype::F16, NHWC_W_F16)
        | f(!c.is_multiple_of(4), NHWC_RAGGED)
}

/// The pools' uniform; mirrors `Params` in pool.wgsl (`tests/shaders.rs` checks the layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // each field is described where the shader declares it
pub struct Params {
    pub total: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub oh: u32,
    pub ow: u32,
    pub size: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub in_off: u32,
    pub out_off: u32,
    pub pad_value: f32,
    pub flags: u32,
    pub cp: u32,
    pub _pad0: u32,
}

fn key(entry: &'static str, bindings: Bindings) -> PipelineKey {
    PipelineKey {
        shader: Shader::Pool,
        entry,
        constants: Vec::new(),
        bindings,
    }
}

/// The max pool's pipeline (no constants to bind).
pub(super) fn max_pool_key() -> PipelineKey {
    key("max_pool", Bindings::Arena)
}

/// The global average pool's pipeline (its fused activation's constants, or a stand-in).
pub(super) fn global_avg_pool_key() -> PipelineKey {
    key("global_avg_pool", Bindings::Consts)
}

/// A max pool; the output size is the output tensor's. `placements`: every tensor's arena
/// placement (offset, dtype), indexed by TensorId.
pub fn max_pool(
    e: &mut Emitter,
    op: &MaxPoolOp,
    tensors: &[TensorInfo],
    images: usize,
    placements: &[Placement],
) {
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    assert_eq!(ti.c, to.c, "{}: channels", op.name);
    assert!(op.size > 0 && op.stride > 0);
    let total = u32_of(images * to.h * to.w * to.c.div_ceil(4));
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
        in_off: offset(&placements[op.input]),
        out_off: offset(&placements[op.output]),
        pad_value: match op.pad_value {
            PadValue::NegInf => f32::NEG_INFINITY,
            PadValue::Zero => 0.0,
        },
        flags: nhwc_flags(
            to.c,
            &placements[op.input],
            &placements[op.output],
            Dtype::F32,
        ),
        ..Default::default()
    };
    e.launch(
        op.name.clone(),
        max_pool_key(),
        bytemuck::bytes_of(&params),
        Vec::new(),
        [total.div_ceil(super::workgroup_size("max_pool")), 1],
        None,
    );
}

/// Mean over H and W (of the fused `bn_relu(x)` with `in_act`). `consts`: the op's slot of
/// the weights buffers (`scale [pad4(c)] | shift [pad4(c)]`, of type `weights`), `None`
/// without `in_act`.
pub fn global_avg_pool(
    e: &mut Emitter,
    op: &GlobalAvgPoolOp,
    tensors: &[TensorInfo],
    images: usize,
    placements: &[Placement],
    consts: Option<WeightSlot>,
    weights: Dtype,
) {
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
    let groups = u32_of(
        images
            * ti.c
                .div_ceil(4 * super::workgroup_size("global_avg_pool") as usize),
    );
    let params = Params {
        total: groups,
        c: u32_of(ti.c),
        h: u32_of(ti.h),
        w: u32_of(ti.w),
        oh: 1,
        ow: 1,
        in_off: offset(&placements[op.input]),
        out_off: offset(&placements[op.output]),
        flags: (u32::from(op.in_act.is_some()) * POOL_ACT)
            | nhwc_flags(ti.c, &placements[op.input], &placements[op.output], weights),
        cp: u32_of(pad4(ti.c)),
        ..Default::default()
    };
    e.launch(
        op.name.clone(),
        global_avg_pool_key(),
        bytemuck::bytes_of(&params),
        vec![consts.map_or(Resource::NoWeights, Resource::Weights)],
        [groups, 1],
        None,
    );
}
