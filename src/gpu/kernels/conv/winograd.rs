//! The Winograd transforms (`shaders/conv/winograd.wgsl`) around a batched GEMM of the conv
//! variants: `winograd_input` writes V, the GEMM (workgroup z = point) M, `winograd_output`
//! the conv's output with its epilogue. V and M are the plan's scratch tensors.

use super::{ConvIo, FLAG_IN_ACT, FLAG_NO_BIAS, FLAG_OUT_F16, Params, f16, flag, offset, u32_of};
use crate::gpu::Dispatch;
use crate::gpu::kernels::{Bindings, Kernels, Shader};
use crate::plan::Placement;
use crate::plan::kernel::ConvPlan;
use crate::winograd::Tile;

/// Invocations per workgroup of both transforms (`WWG` in the shader).
const WWG: u32 = 64;

impl Kernels {
    /// The three dispatches of a Winograd conv. `conv`: the direct conv's uniform (shapes,
    /// tensor offsets and epilogue flags); `v`, `m`: the scratch tensors.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn winograd(
        &self,
        label: &str,
        tile: Tile,
        plan: &ConvPlan,
        conv: Params,
        a16: bool,
        io: &ConvIo<'_>,
        v: Placement,
        m: Placement,
        out_channels: usize,
    ) -> Vec<Dispatch> {
        let g = &plan.gemm;
        let tiles = g.m;
        let (cin, cout) = (conv.cin, conv.cout);
        assert!(
            cin.is_multiple_of(4) && cout.is_multiple_of(4) && out_channels == cout as usize,
            "{label}: Winograd takes 4-aligned channels and no split"
        );
        assert_eq!(
            (g.n, g.k, g.batch as usize),
            (cout, cin, tile.points()),
            "{label}: kernel config for another shape"
        );
        let points = u32_of(tile.points());
        let (v16, m16) = (f16(v.dtype), f16(m.dtype));
        let w16 = f64::from(u8::from(f16(io.weights)));
        // The constants: U [points][cin][cout] | bias [cout] | scale, shift [cin].
        let bias = points * cin * cout;
        let act = bias + cout;
        let transform = Params {
            m: tiles,
            bias,
            act,
            tiles_y: u32_of(tile.tiles(conv.oh as usize)),
            tiles_x: u32_of(tile.tiles(conv.ow as usize)),
            alpha: u32_of(tile.alpha()),
            ..conv
        };

        let input = Params {
            out_off: offset(&v),
            a_batch: tiles * cin,
            flags: (conv.flags & FLAG_IN_ACT) | flag(v16, FLAG_OUT_F16),
            ..transform
        };
        let d_in = self.transform(
            &format!("{label} (winograd input)"),
            "winograd_input",
            &input,
            &[("A_F16", f64::from(u8::from(a16))), ("W_F16", w16)],
            io,
            tiles * (cin / 4),
        );

        let gemm = Params {
            m: tiles,
            h: 1,
            w: tiles,
            oh: 1,
            ow: tiles,
            kh: 1,
            kw: 1,
            stride: 1,
            pad: 0,
            in_off: offset(&v),
            out_off: offset(&m),
            at: cout,
            cinp: cin,
            coutp: cout,
            flags: FLAG_NO_BIAS | flag(m16, FLAG_OUT_F16),
            res_off: 0,
            split_off: 0,
            a_batch: tiles * cin,
            c_batch: tiles * cout,
            w_batch: cin * cout,
            ..transform
        };
        let stage = self.stage_for(g, &gemm, v16, io, u64::from(points) * u64::from(tiles));
        let d_gemm = self.gemm(&format!("{label} (winograd GEMM)"), g, gemm, v16, io, stage);

        let output = Params {
            in_off: offset(&m),
            c_batch: tiles * cout,
            flags: conv.flags & !FLAG_IN_ACT,
            ..transform
        };
        let d_out = self.transform(
            &format!("{label} (winograd output)"),
            "winograd_output",
            &output,
            &[("A_F16", f64::from(u8::from(m16))), ("W_F16", w16)],
            io,
            tiles * (cout / 4),
        );
        vec![d_in, d_gemm, d_out]
    }

    fn transform(
        &self,
        label: &str,
        entry: &'static str,
        params: &Params,
        constants: &[(&'static str, f64)],
        io: &ConvIo<'_>,
        items: u32,
    ) -> Dispatch {
        let pipeline = self.pipeline(Shader::Winograd, entry, constants, Bindings::Consts);
        self.dispatch(
            label,
            pipeline,
            bytemuck::bytes_of(params),
            io.arena,
            &[wgpu::BindingResource::Buffer(io.consts.clone())],
            [items.div_ceil(WWG), 1],
        )
    }
}
