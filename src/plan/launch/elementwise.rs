//! Elementwise ops (`shaders/elementwise.wgsl`, after `shaders/nhwc.wgsl`).

use super::pool::nhwc_flags;
use super::{Bindings, Emitter, PipelineKey, Resource, Shader, offset, u32_of};
use crate::graph::{BnReluOp, TensorInfo, pad4};
use crate::plan::{Dtype, Placement, WeightSlot};

/// bn_relu's uniform; mirrors `Params` in elementwise.wgsl (`tests/shaders.rs` checks it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // each field is described where the shader declares it
pub struct Params {
    pub total: u32,
    pub c: u32,
    pub in_off: u32,
    pub out_off: u32,
    pub cp: u32,
    pub flags: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// `flags` bit: the affine only (mirrors elementwise.wgsl). A flag rather than an entry point,
/// so that it costs no second pipeline.
pub const BN_NO_RELU: u32 = 16;

/// Elementwise `relu(x * scale + shift)`, or `x * scale + shift` when `op.relu` is off.
/// `consts`: the op's slot of the weights buffers (`scale [pad4(c)] | shift [pad4(c)]`, of
/// type `weights`).
pub fn bn_relu(
    e: &mut Emitter,
    op: &BnReluOp,
    tensors: &[TensorInfo],
    images: usize,
    placements: &[Placement],
    consts: WeightSlot,
    weights: Dtype,
) {
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    assert_eq!(
        (ti.h, ti.w, ti.c),
        (to.h, to.w, to.c),
        "{}: shapes",
        op.name
    );
    let total = u32_of(images * ti.h * ti.w * ti.c.div_ceil(4));
    let params = Params {
        total,
        c: u32_of(ti.c),
        in_off: offset(&placements[op.input]),
        out_off: offset(&placements[op.output]),
        cp: u32_of(pad4(ti.c)),
        flags: nhwc_flags(ti.c, &placements[op.input], &placements[op.output], weights)
            | if op.relu { 0 } else { BN_NO_RELU },
        ..Default::default()
    };
    e.launch(
        op.name.clone(),
        bn_relu_key(),
        bytemuck::bytes_of(&params),
        vec![Resource::Weights(consts)],
        [total.div_ceil(super::workgroup_size("bn_relu")), 1],
        None,
    );
}

/// `bn_relu`'s pipeline.
pub(super) fn bn_relu_key() -> PipelineKey {
    PipelineKey {
        shader: Shader::Elementwise,
        entry: "bn_relu",
        constants: Vec::new(),
        bindings: Bindings::Consts,
    }
}
