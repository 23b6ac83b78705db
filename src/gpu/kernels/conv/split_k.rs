//! Split K (`conv_shared` with `SPLIT_K`, then `splitk_reduce`, both in
//! `shaders/conv/shared.wgsl`): the GEMM's K range in `splits` slices, one per workgroup z,
//! each storing raw partial sums into the plan's scratch tensor `[splits][M][coutp]`; the
//! reduction sums them and applies the conv's epilogue. For layers whose output has too few
//! tiles to fill a GPU (7x7 maps at batch 1).

use super::{ConvIo, FLAG_NO_BIAS, FLAG_OUT_F16, FLAG_RES_F16, FLAG_RESIDUAL, Params, offset};
use crate::gpu::Dispatch;
use crate::gpu::kernels::{Bindings, Kernels, Shader};
use crate::plan::Placement;
use crate::plan::kernel::{ConvConfig, ConvVariant, split_k_chunk};

/// Invocations per workgroup of the reduction (`@workgroup_size` of `splitk_reduce`).
const REDUCE_WG: u32 = 64;

impl Kernels {
    /// The two dispatches of a split-K conv: `conv` is the direct conv's uniform (shapes,
    /// tensor offsets, epilogue flags), `partials` the scratch tensor.
    pub(super) fn split_k(
        &self,
        label: &str,
        cfg: &ConvConfig,
        conv: Params,
        a16: bool,
        io: &ConvIo<'_>,
        partials: Placement,
    ) -> Vec<Dispatch> {
        assert!(
            cfg.variant == ConvVariant::Shared && cfg.splits >= 2 && cfg.batch == 1,
            "{label}: split K runs the shared variant on one GEMM"
        );
        let slice = conv.m * conv.coutp;
        // The GEMM: partial sums, no epilogue, f32 scratch.
        let gemm = Params {
            out_off: offset(&partials),
            c_batch: slice,
            k_chunk: split_k_chunk(cfg.k, cfg.splits, cfg.k_step),
            splits: cfg.splits,
            flags: (conv.flags & !(FLAG_RESIDUAL | FLAG_OUT_F16 | FLAG_RES_F16)) | FLAG_NO_BIAS,
            ..conv
        };
        let d_gemm = self.gemm(&format!("{label} (split-K GEMM)"), cfg, gemm, a16, io, None);
        // The reduction reads the partials (f32) and writes the conv's outputs.
        let reduce = Params {
            in_off: offset(&partials),
            c_batch: slice,
            splits: cfg.splits,
            ..conv
        };
        let w16 = f64::from(u8::from(io.weights == crate::plan::Dtype::F16));
        let pipeline = self.pipeline(
            Shader::ConvShared,
            "splitk_reduce",
            &[("W_F16", w16)],
            Bindings::Consts,
        );
        let d_reduce = self.dispatch(
            &format!("{label} (split-K reduce)"),
            pipeline,
            bytemuck::bytes_of(&reduce),
            io.arena,
            &[wgpu::BindingResource::Buffer(io.consts.clone())],
            [(conv.m * (conv.coutp / 4)).div_ceil(REDUCE_WG), 1],
        );
        vec![d_gemm, d_reduce]
    }
}
