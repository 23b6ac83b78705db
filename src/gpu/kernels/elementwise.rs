//! Elementwise ops (`shaders/elementwise.wgsl`, after `shaders/nhwc.wgsl`).

use super::pool::dtype_flags;
use super::{Bindings, Kernels, Shader, elem_offset, u32_of};
use crate::gpu::Dispatch;
use crate::graph::{BnReluOp, TensorInfo, pad4};
use crate::plan::{Dtype, Placement};

/// Mirrors `Params` in elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    total: u32,
    c: u32,
    in_off: u32,
    out_off: u32,
    cp: u32,
    flags: u32,
    _pad: [u32; 2],
}

/// `flags` bit: the affine only (mirrors elementwise.wgsl). A flag rather than an entry point,
/// so that it costs no second pipeline.
const FLAG_NO_RELU: u32 = 16;

/// Invocations per workgroup.
const WG: u32 = 256;

impl Kernels {
    /// Elementwise `relu(x * scale + shift)`, or `x * scale + shift` when `op.relu` is off. `consts`: the op's slot of the weights buffer
    /// (`scale [pad4(c)] | shift [pad4(c)]`, of type `weights`).
    #[allow(clippy::too_many_arguments)]
    pub fn bn_relu(
        &self,
        op: &BnReluOp,
        tensors: &[TensorInfo],
        batch: u32,
        arena: &wgpu::Buffer,
        placements: &[Placement],
        consts: wgpu::BufferBinding<'_>,
        weights: Dtype,
    ) -> Dispatch {
        let ti = &tensors[op.input];
        let to = &tensors[op.output];
        assert_eq!(
            (ti.h, ti.w, ti.c),
            (to.h, to.w, to.c),
            "{}: shapes",
            op.name
        );
        let total = u32_of(batch as usize * ti.h * ti.w * ti.c.div_ceil(4));
        let params = Params {
            total,
            c: u32_of(ti.c),
            in_off: elem_offset(placements, op.input),
            out_off: elem_offset(placements, op.output),
            cp: u32_of(pad4(ti.c)),
            flags: dtype_flags(&placements[op.input], &placements[op.output], weights)
                | if op.relu { 0 } else { FLAG_NO_RELU },
            ..Default::default()
        };
        let pipeline = self.pipeline(Shader::Elementwise, "bn_relu", &[], Bindings::Consts);
        self.dispatch(
            &op.name,
            pipeline,
            bytemuck::bytes_of(&params),
            arena,
            &[wgpu::BindingResource::Buffer(consts)],
            [total.div_ceil(WG), 1],
        )
    }
}
