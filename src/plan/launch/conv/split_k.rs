//! Split K (`conv_shared` with `SPLIT_K`, then `splitk_reduce`, both in
//! `shaders/conv/shared.wgsl`): the GEMM's K range in `splits` slices, one per workgroup z,
//! each storing raw partial sums into the plan's scratch tensor `[splits][M][coutp]`; the
//! reduction sums them and applies the conv's epilogue. For layers whose output has too few
//! tiles to fill a GPU (7x7 maps at batch 1).

use super::{
    ConvOperands, FLAG_NO_BIAS, FLAG_OUT_F16, FLAG_RES_F16, FLAG_RESIDUAL, Gemm, Params, gemm,
};
use crate::plan::kernel::{ConvConfig, ConvVariant, split_k_chunk};
use crate::plan::launch::{Bindings, Emitter, PipelineKey, Resource, Shader, offset};
use crate::plan::{Dtype, Placement};

/// The two launches of a split-K conv: `conv` is the direct conv's uniform (shapes, tensor
/// offsets, epilogue flags), `partials` the scratch tensor.
pub(super) fn launches(
    e: &mut Emitter,
    label: &str,
    cfg: &ConvConfig,
    conv: Params,
    a16: bool,
    at: &ConvOperands<'_>,
    partials: Placement,
) {
    assert!(
        cfg.variant == ConvVariant::Shared && cfg.splits >= 2 && cfg.gemms == 1,
        "{label}: split K runs the shared variant on one GEMM"
    );
    let slice = conv.m * conv.coutp;
    // The GEMM: partial sums, no epilogue, f32 scratch.
    let params = Params {
        out_off: offset(&partials),
        c_stride: slice,
        k_chunk: split_k_chunk(cfg.k, cfg.splits, cfg.k_step),
        splits: cfg.splits,
        flags: (conv.flags & !(FLAG_RESIDUAL | FLAG_OUT_F16 | FLAG_RES_F16)) | FLAG_NO_BIAS,
        ..conv
    };
    gemm(
        e,
        Gemm {
            label: format!("{label} (split-K GEMM)"),
            cfg,
            params,
            a16,
            pixels: 0,
            at,
            before: Vec::new(),
            copy: None,
        },
    );
    // The reduction reads the partials (f32) and writes the conv's outputs.
    let reduce = Params {
        in_off: offset(&partials),
        c_stride: slice,
        splits: cfg.splits,
        ..conv
    };
    e.launch(
        format!("{label} (split-K reduce)"),
        reduce_key(at.weights_dtype),
        bytemuck::bytes_of(&reduce),
        vec![Resource::Weights(at.weights)],
        [
            (conv.m * (conv.coutp / 4))
                .div_ceil(crate::plan::launch::workgroup_size("splitk_reduce")),
            1,
        ],
        None,
    );
}

/// The reduction's pipeline, for constants of `weights` (it reads f32 partials).
pub(super) fn reduce_key(weights: Dtype) -> PipelineKey {
    PipelineKey {
        shader: Shader::ConvShared,
        entry: "splitk_reduce",
        constants: vec![("W_F16", f64::from(u8::from(weights == Dtype::F16)))],
        bindings: Bindings::Consts,
    }
}
