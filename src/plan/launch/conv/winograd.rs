//! The Winograd transforms (`shaders/conv/winograd.wgsl`) around a batched GEMM of the conv
//! variants: `winograd_input` writes V, the GEMM (workgroup z = point) M, `winograd_output`
//! the conv's output with its epilogue. V and M are the plan's scratch tensors.

use super::{
    ConvOperands, FLAG_IN_ACT, FLAG_NO_BIAS, FLAG_OUT_F16, Gemm, Params, f16, flag, gemm, storage,
};
use crate::plan::Placement;
use crate::plan::kernel::ConvPlan;
use crate::plan::launch::{Bindings, Emitter, PipelineKey, Resource, Shader, offset, u32_of};
use crate::winograd::Tile;

/// The three launches of a Winograd conv. `conv`: the direct conv's uniform (shapes, tensor
/// offsets and epilogue flags); `v`, `m`: the scratch tensors.
#[allow(clippy::too_many_arguments)]
pub(super) fn launches(
    e: &mut Emitter,
    label: &str,
    tile: Tile,
    plan: &ConvPlan,
    conv: Params,
    a16: bool,
    at: &ConvOperands<'_>,
    v: Placement,
    m: Placement,
) {
    let g = &plan.gemm;
    let tiles = g.m;
    let (cin, cout) = (conv.cin, conv.cout);
    assert!(
        cin.is_multiple_of(4) && cout.is_multiple_of(4) && conv.at == cout,
        "{label}: Winograd takes 4-aligned channels and no split"
    );
    assert_eq!(
        (g.n, g.k, g.gemms as usize),
        (cout, cin, tile.points()),
        "{label}: kernel config for another shape"
    );
    let points = u32_of(tile.points());
    let (v16, m16) = (f16(v.dtype), f16(m.dtype));
    // The constants: U [points][cin][cout] | bias [cout] | scale, shift [cin], in one slot, or
    // U in the GEMM's and the rest in the transforms' own.
    let bias = if at.transform_weights.is_some() {
        0
    } else {
        points * cin * cout
    };
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
        a_stride: tiles * cin,
        flags: (conv.flags & FLAG_IN_ACT) | flag(v16, FLAG_OUT_F16),
        ..transform
    };
    self::transform(
        e,
        format!("{label} (winograd input)"),
        "winograd_input",
        &input,
        storage(a16, at.weights_dtype),
        at,
        tiles * (cin / 4),
    );

    let params = Params {
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
        a_stride: tiles * cin,
        c_stride: tiles * cout,
        w_stride: cin * cout,
        ..transform
    };
    gemm(
        e,
        Gemm {
            label: format!("{label} (winograd GEMM)"),
            cfg: g,
            params,
            a16: v16,
            pixels: u64::from(points) * u64::from(tiles),
            at,
            before: Vec::new(),
            copy: None,
        },
    );

    let output = Params {
        in_off: offset(&m),
        c_stride: tiles * cout,
        flags: conv.flags & !FLAG_IN_ACT,
        ..transform
    };
    self::transform(
        e,
        format!("{label} (winograd output)"),
        "winograd_output",
        &output,
        storage(m16, at.weights_dtype),
        at,
        tiles * (cout / 4),
    );
}

fn transform(
    e: &mut Emitter,
    label: String,
    entry: &'static str,
    params: &Params,
    constants: [(&'static str, f64); 2],
    at: &ConvOperands<'_>,
    items: u32,
) {
    e.launch(
        label,
        transform_key(entry, constants),
        bytemuck::bytes_of(params),
        vec![Resource::Weights(
            at.transform_weights.unwrap_or(at.weights),
        )],
        [
            items.div_ceil(crate::plan::launch::workgroup_size(entry)),
            1,
        ],
        None,
    );
}

/// A transform's pipeline (`winograd_input` or `winograd_output`) with its storage constants.
pub(super) fn transform_key(
    entry: &'static str,
    constants: [(&'static str, f64); 2],
) -> PipelineKey {
    PipelineKey {
        shader: Shader::Winograd,
        entry,
        constants: constants.to_vec(),
        bindings: Bindings::Consts,
    }
}
