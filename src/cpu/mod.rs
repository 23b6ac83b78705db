//! Naive CPU reference implementations of every op and of the whole lowered graph.
//!
//! These are deliberately the obvious loops (f32 storage, f64 accumulation): they define the
//! semantics the GPU kernels are tested against, so clarity beats speed. All tensors are NHWC
//! with a leading batch dimension; shapes come from the op's [`TensorInfo`]s.

use crate::graph::{
    BnRelu, BnReluOp, ConvOp, GlobalAvgPoolOp, Graph, MaxPoolOp, Op, PadValue, TensorInfo,
};
use crate::winograd::{self, Tile};

/// ReLU that keeps NaN, as the frameworks' relu does (`f64::max` would return 0 for NaN).
fn relu(v: f64) -> f64 {
    if v < 0.0 { 0.0 } else { v }
}

fn relu_if(v: f64, on: bool) -> f64 {
    if on { relu(v) } else { v }
}

fn bn_relu_one(x: f32, act: &BnRelu, c: usize) -> f64 {
    relu(x as f64 * act.scale[c] as f64 + act.shift[c] as f64)
}

/// A fused convolution (see [`ConvOp`]): returns the main output and, with `split`, the
/// second output.
///
/// * Output size is the output tensor's; input row `iy = oy * stride - pad + ky`.
/// * Out-of-range input positions contribute 0 *after* the pre-activation: `in_act` is applied
///   to in-bounds elements only, because the frameworks zero-pad the pre-activated map.
/// * `out = act(acc + bias + residual[n, oy * rs, ox * rs, c])`; the residual (which has the
///   main output's channel count) is added to the main output channels `[0, at)` only.
/// * With `split`, channels `[at, cout)` go to the split tensor with its own `relu` flag.
pub fn conv(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    input: &[f32],
    residual: Option<&[f32]>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    check_conv(op, tensors, batch, input);
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    let mut acc = vec![0f64; batch * to.h * to.w * op.cout];
    for n in 0..batch {
        for oy in 0..to.h {
            for ox in 0..to.w {
                let pix = (n * to.h + oy) * to.w + ox;
                let acc = &mut acc[pix * op.cout..(pix + 1) * op.cout];
                for ky in 0..op.kh {
                    let iy = (oy * op.stride + ky) as isize - op.pad as isize;
                    if iy < 0 || iy >= ti.h as isize {
                        continue; // zero padding: contributes nothing
                    }
                    for kx in 0..op.kw {
                        let ix = (ox * op.stride + kx) as isize - op.pad as isize;
                        if ix < 0 || ix >= ti.w as isize {
                            continue;
                        }
                        let base = ((n * ti.h + iy as usize) * ti.w + ix as usize) * ti.c;
                        for ci in 0..op.cin {
                            let x = pre_activated(op, input[base + ci], ci);
                            let wrow = ((ky * op.kw + kx) * op.cin + ci) * op.cout;
                            let w = &op.weight[wrow..wrow + op.cout];
                            for (a, &w) in acc.iter_mut().zip(w) {
                                *a += x * w as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    epilogue(op, tensors, batch, &acc, residual)
}

/// The same convolution by Winograd's `F(m x m, 3 x 3)` (3x3, stride 1, pad 1 only): input
/// transform of every pre-activated, zero-padded tile, `a^2` GEMMs, output transform, the same
/// epilogue. The reference of the GPU's Winograd path, tested against [`conv`].
pub fn conv_winograd(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    input: &[f32],
    residual: Option<&[f32]>,
    tile: Tile,
) -> (Vec<f32>, Option<Vec<f32>>) {
    check_conv(op, tensors, batch, input);
    assert!(
        op.kh == 3 && op.kw == 3 && op.stride == 1 && op.pad == 1,
        "{}: Winograd takes 3x3 stride-1 pad-1 convs",
        op.name
    );
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    let (a, m) = (tile.alpha(), tile.m());
    let u = winograd::transform_filters(tile, &op.weight, op.cin, op.cout);
    let mut acc = vec![0f64; batch * to.h * to.w * op.cout];
    let mut v = vec![0f64; tile.points() * op.cin];
    let mut d = vec![0f64; a * a];
    for n in 0..batch {
        for ty in 0..tile.tiles(to.h) {
            for tx in 0..tile.tiles(to.w) {
                // V for every input channel of this tile.
                for ci in 0..op.cin {
                    for y in 0..a {
                        for x in 0..a {
                            let iy = (ty * m + y) as isize - 1;
                            let ix = (tx * m + x) as isize - 1;
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < ti.h && (ix as usize) < ti.w;
                            d[y * a + x] = if inside {
                                let at = ((n * ti.h + iy as usize) * ti.w + ix as usize) * ti.c;
                                pre_activated(op, input[at + ci], ci)
                            } else {
                                0.0
                            };
                        }
                    }
                    for (p, t) in winograd::input_tile(tile, &d).into_iter().enumerate() {
                        v[p * op.cin + ci] = t;
                    }
                }
                // The a^2 products, then the output transform of each channel.
                for co in 0..op.cout {
                    let prod: Vec<f64> = (0..tile.points())
                        .map(|p| {
                            (0..op.cin)
                                .map(|ci| v[p * op.cin + ci] * u[(p * op.cin + ci) * op.cout + co])
                                .sum()
                        })
                        .collect();
                    let y = winograd::output_tile(tile, &prod);
                    for oy in 0..m {
                        for ox in 0..m {
                            let (py, px) = (ty * m + oy, tx * m + ox);
                            if py < to.h && px < to.w {
                                let pix = (n * to.h + py) * to.w + px;
                                acc[pix * op.cout + co] = y[oy * m + ox];
                            }
                        }
                    }
                }
            }
        }
    }
    epilogue(op, tensors, batch, &acc, residual)
}

fn check_conv(op: &ConvOp, tensors: &[TensorInfo], batch: usize, input: &[f32]) {
    let ti = &tensors[op.input];
    assert_eq!(ti.c, op.cin, "{}: input channels", op.name);
    assert_eq!(input.len(), batch * ti.len(), "{}: input length", op.name);
    let at = op.split.as_ref().map_or(op.cout, |s| s.at);
    assert_eq!(tensors[op.output].c, at, "{}: output channels", op.name);
    assert_eq!(op.weight.len(), op.kh * op.kw * op.cin * op.cout);
}

/// An in-bounds input element after the optional pre-activation.
fn pre_activated(op: &ConvOp, x: f32, c: usize) -> f64 {
    match &op.in_act {
        Some(a) => bn_relu_one(x, a, c),
        None => x as f64,
    }
}

/// Bias, residual, ReLU and split of the accumulators `[batch * oh * ow][cout]`.
fn epilogue(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    acc: &[f64],
    residual: Option<&[f32]>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let to = &tensors[op.output];
    let at = op.split.as_ref().map_or(op.cout, |s| s.at);
    let res = op.residual.as_ref().map(|r| {
        let rt = &tensors[r.tensor];
        let data = residual.expect("conv with a residual needs its tensor");
        assert_eq!(rt.c, at, "{}: residual channels", op.name);
        assert_eq!(data.len(), batch * rt.len(), "{}: residual length", op.name);
        (rt, r.stride, data)
    });
    let split_c = op.cout - at;
    let mut out = vec![0f32; batch * to.h * to.w * at];
    let mut split = op
        .split
        .as_ref()
        .map(|_| vec![0f32; batch * to.h * to.w * split_c]);
    for n in 0..batch {
        for oy in 0..to.h {
            for ox in 0..to.w {
                let pix = (n * to.h + oy) * to.w + ox;
                for (co, &a) in acc[pix * op.cout..(pix + 1) * op.cout].iter().enumerate() {
                    let mut v = a + op.bias[co] as f64;
                    if co < at {
                        if let Some((rt, rs, data)) = &res {
                            let (ry, rx) = (oy * rs, ox * rs);
                            assert!(ry < rt.h && rx < rt.w, "{}: residual too small", op.name);
                            v += data[((n * rt.h + ry) * rt.w + rx) * rt.c + co] as f64;
                        }
                        out[pix * at + co] = relu_if(v, op.relu) as f32;
                    } else {
                        let s = op.split.as_ref().unwrap();
                        split.as_mut().unwrap()[pix * split_c + co - at] =
                            relu_if(v, s.relu) as f32;
                    }
                }
            }
        }
    }
    (out, split)
}

/// A max pool (see [`MaxPoolOp`]): input row `iy = oy * stride - pad_top + ky`; positions
/// outside the input read `-inf` or `0` per `pad_value`.
pub fn max_pool(op: &MaxPoolOp, tensors: &[TensorInfo], batch: usize, input: &[f32]) -> Vec<f32> {
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    assert_eq!(ti.c, to.c);
    assert_eq!(input.len(), batch * ti.len());
    let pad = match op.pad_value {
        PadValue::NegInf => f32::NEG_INFINITY,
        PadValue::Zero => 0.0,
    };
    let mut out = vec![0f32; batch * to.len()];
    for n in 0..batch {
        for oy in 0..to.h {
            for ox in 0..to.w {
                for c in 0..to.c {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..op.size {
                        for kx in 0..op.size {
                            let iy = (oy * op.stride + ky) as isize - op.pad_top as isize;
                            let ix = (ox * op.stride + kx) as isize - op.pad_left as isize;
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < ti.h && (ix as usize) < ti.w;
                            let v = if inside {
                                input[((n * ti.h + iy as usize) * ti.w + ix as usize) * ti.c + c]
                            } else {
                                pad
                            };
                            // NaN wins and stays, as in the frameworks' max pool.
                            if !m.is_nan() && (v > m || v.is_nan()) {
                                m = v;
                            }
                        }
                    }
                    out[((n * to.h + oy) * to.w + ox) * to.c + c] = m;
                }
            }
        }
    }
    out
}

/// Mean over H and W of `x` (or of `bn_relu(x)` with `in_act`); output `batch x 1 x 1 x C`.
pub fn global_avg_pool(
    op: &GlobalAvgPoolOp,
    tensors: &[TensorInfo],
    batch: usize,
    input: &[f32],
) -> Vec<f32> {
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    assert_eq!((to.h, to.w, to.c), (1, 1, ti.c));
    assert_eq!(input.len(), batch * ti.len());
    let hw = ti.h * ti.w;
    let mut out = vec![0f32; batch * ti.c];
    for n in 0..batch {
        for c in 0..ti.c {
            let mut s = 0f64;
            for p in 0..hw {
                let x = input[(n * hw + p) * ti.c + c];
                s += match &op.in_act {
                    Some(a) => bn_relu_one(x, a, c),
                    None => x as f64,
                };
            }
            out[n * ti.c + c] = (s / hw as f64) as f32;
        }
    }
    out
}

/// Elementwise `relu(x * scale[c] + shift[c])` (no ReLU when `op.relu` is off).
pub fn bn_relu(op: &BnReluOp, tensors: &[TensorInfo], batch: usize, input: &[f32]) -> Vec<f32> {
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    assert_eq!((to.h, to.w, to.c), (ti.h, ti.w, ti.c));
    assert_eq!(input.len(), batch * ti.len());
    input
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = i % ti.c;
            let y = x as f64 * op.act.scale[c] as f64 + op.act.shift[c] as f64;
            relu_if(y, op.relu) as f32
        })
        .collect()
}

/// Runs the whole graph on `batch` NHWC images (`input_nhwc` is the graph input tensor, batch
/// first). Returns every tensor's value by [`TensorId`](crate::graph::TensorId); `None` for
/// tensors no op produced.
pub fn run_graph(graph: &Graph, batch: usize, input_nhwc: &[f32]) -> Vec<Option<Vec<f32>>> {
    let t = &graph.tensors;
    assert_eq!(
        input_nhwc.len(),
        batch * t[graph.input].len(),
        "input length must be batch * h * w * c of the graph input"
    );
    let mut vals: Vec<Option<Vec<f32>>> = vec![None; t.len()];
    vals[graph.input] = Some(input_nhwc.to_vec());
    let get = |vals: &[Option<Vec<f32>>], id: usize, op: &str| -> Vec<f32> {
        vals[id]
            .clone()
            .unwrap_or_else(|| panic!("{op}: tensor {} read before written", t[id].name))
    };
    for op in &graph.ops {
        match op {
            Op::Conv(o) => {
                let x = get(&vals, o.input, &o.name);
                let r = o.residual.as_ref().map(|r| get(&vals, r.tensor, &o.name));
                let (y, s) = conv(o, t, batch, &x, r.as_deref());
                vals[o.output] = Some(y);
                if let (Some(sp), Some(s)) = (&o.split, s) {
                    vals[sp.tensor] = Some(s);
                }
            }
            Op::MaxPool(o) => {
                let x = get(&vals, o.input, &o.name);
                vals[o.output] = Some(max_pool(o, t, batch, &x));
            }
            Op::GlobalAvgPool(o) => {
                let x = get(&vals, o.input, &o.name);
                vals[o.output] = Some(global_avg_pool(o, t, batch, &x));
            }
            Op::BnRelu(o) => {
                let x = get(&vals, o.input, &o.name);
                vals[o.output] = Some(bn_relu(o, t, batch, &x));
            }
        }
    }
    vals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Residual, SplitOutput};

    fn t(h: usize, w: usize, c: usize) -> TensorInfo {
        TensorInfo {
            name: format!("{h}x{w}x{c}"),
            h,
            w,
            c,
        }
    }

    fn conv1(kh: usize, pad: usize, cout: usize, weight: Vec<f32>) -> ConvOp {
        ConvOp {
            name: "c".into(),
            input: 0,
            output: 1,
            kh,
            kw: kh,
            stride: 1,
            pad,
            cin: 1,
            cout,
            weight,
            bias: vec![0.0; cout],
            in_act: None,
            residual: None,
            relu: false,
            split: None,
        }
    }

    #[test]
    fn conv_pads_the_pre_activated_map_with_zeros() {
        // Every 3x3 window (pad 1) of a 2x2 map covers the whole map: out = sum(x + 1) = 14.
        // Activating the 5 padded taps too would give 19.
        let mut op = conv1(3, 1, 1, vec![1.0; 9]);
        op.in_act = Some(BnRelu {
            scale: vec![1.0],
            shift: vec![1.0],
        });
        let (out, split) = conv(
            &op,
            &[t(2, 2, 1), t(2, 2, 1)],
            1,
            &[1.0, 2.0, 3.0, 4.0],
            None,
        );
        assert_eq!(out, [14.0; 4]);
        assert!(split.is_none());
    }

    #[test]
    fn conv_residual_stride_split_and_relu() {
        // 1x1 conv with weights [1, -1, 2] and bias [0, 0, -10]; channel 0 is the main output
        // (+ residual[2y, 2x], relu), channels 1..3 the split (no relu).
        let mut op = conv1(1, 0, 3, vec![1.0, -1.0, 2.0]);
        op.bias = vec![0.0, 0.0, -10.0];
        op.relu = true;
        op.residual = Some(Residual {
            tensor: 2,
            stride: 2,
        });
        op.split = Some(SplitOutput {
            at: 1,
            tensor: 3,
            relu: false,
        });
        let tensors = [t(2, 2, 1), t(2, 2, 1), t(3, 3, 1), t(2, 2, 2)];
        let res: Vec<f32> = (0..9).map(|i| -(i as f32)).collect();
        let (out, split) = conv(&op, &tensors, 1, &[1.0, 2.0, 3.0, 4.0], Some(&res));
        // res[0,0]=0, res[0,2]=-2, res[2,0]=-6, res[2,2]=-8
        assert_eq!(out, [1.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            split.unwrap(),
            [-1.0, -8.0, -2.0, -6.0, -3.0, -4.0, -4.0, -2.0]
        );
    }

    #[test]
    fn max_pool_pad_values() {
        let mut op = MaxPoolOp {
            name: "p".into(),
            input: 0,
            output: 1,
            size: 2,
            stride: 2,
            pad_top: 1,
            pad_left: 1,
            pad_value: PadValue::NegInf,
        };
        let tensors = [t(2, 2, 1), t(2, 2, 1)];
        let x = [-1.0, -2.0, -3.0, -4.0];
        assert_eq!(max_pool(&op, &tensors, 1, &x), [-1.0, -2.0, -3.0, -4.0]);
        op.pad_value = PadValue::Zero;
        assert_eq!(max_pool(&op, &tensors, 1, &x), [0.0; 4]);
    }

    #[test]
    fn global_avg_pool_and_bn_relu() {
        let act = BnRelu {
            scale: vec![2.0, -1.0],
            shift: vec![0.0, 1.0],
        };
        let tensors = [t(1, 2, 2), t(1, 1, 2)];
        let x = [1.0, 3.0, -1.0, 0.0]; // pixel 0: (1, 3), pixel 1: (-1, 0)
        let gap = GlobalAvgPoolOp {
            name: "g".into(),
            input: 0,
            output: 1,
            in_act: Some(act.clone()),
        };
        // channel 0: relu(2), relu(-2) -> 1; channel 1: relu(-2), relu(1) -> 0.5
        assert_eq!(global_avg_pool(&gap, &tensors, 1, &x), [1.0, 0.5]);
        let mut bn = BnReluOp {
            name: "b".into(),
            input: 0,
            output: 0,
            act,
            relu: true,
        };
        assert_eq!(bn_relu(&bn, &tensors, 1, &x), [2.0, 0.0, 0.0, 1.0]);
        bn.relu = false;
        assert_eq!(bn_relu(&bn, &tensors, 1, &x), [2.0, -2.0, -2.0, 1.0]);
    }

    #[test]
    fn run_graph_chains_ops() {
        let tensors = vec![t(2, 2, 1), t(2, 2, 1), t(1, 1, 1)];
        let graph = Graph {
            tensors,
            ops: vec![
                Op::Conv(conv1(1, 0, 1, vec![2.0])),
                Op::GlobalAvgPool(GlobalAvgPoolOp {
                    name: "g".into(),
                    input: 1,
                    output: 2,
                    in_act: None,
                }),
            ],
            input: 0,
            logits: 2,
            features: vec![],
        };
        let vals = run_graph(&graph, 2, &[1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 4.0]);
        assert_eq!(
            vals[1].as_deref().unwrap(),
            [2.0, 4.0, 6.0, 8.0, 0.0, 0.0, 0.0, 8.0]
        );
        assert_eq!(vals[2].as_deref().unwrap(), [5.0, 2.0]);
    }

    /// The Winograd reference equals the direct one (to f64 rounding) on odd sizes (partial
    /// tiles), with the pre-activation (padding after the act), a residual, ReLU and a split.
    #[test]
    fn winograd_matches_the_direct_conv() {
        let mut s = 7u64;
        let mut rnd = move |n: usize, lo: f32, hi: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
                })
                .collect()
        };
        for (tile, h, w, cin, cout, batch) in [
            (Tile::F2, 5, 7, 3, 6, 2),
            (Tile::F4, 9, 6, 5, 7, 2),
            (Tile::F4, 4, 4, 2, 3, 1),
            (Tile::F2, 1, 3, 4, 4, 1),
        ] {
            let at = cout - 2;
            let op = ConvOp {
                name: "w".into(),
                input: 0,
                output: 1,
                kh: 3,
                kw: 3,
                stride: 1,
                pad: 1,
                cin,
                cout,
                weight: rnd(9 * cin * cout, -0.5, 0.5),
                bias: rnd(cout, -0.5, 0.5),
                in_act: Some(BnRelu {
                    scale: rnd(cin, -1.0, 1.0),
                    shift: rnd(cin, -0.2, 1.0),
                }),
                residual: Some(Residual {
                    tensor: 2,
                    stride: 1,
                }),
                relu: true,
                split: Some(SplitOutput {
                    at,
                    tensor: 3,
                    relu: false,
                }),
            };
            let tensors = [t(h, w, cin), t(h, w, at), t(h, w, at), t(h, w, 2)];
            let x = rnd(batch * h * w * cin, -1.0, 1.0);
            let r = rnd(batch * h * w * at, -1.0, 1.0);
            let direct = conv(&op, &tensors, batch, &x, Some(&r));
            let wino = conv_winograd(&op, &tensors, batch, &x, Some(&r), tile);
            for (a, b) in [
                (&direct.0, &wino.0),
                (direct.1.as_ref().unwrap(), wino.1.as_ref().unwrap()),
            ] {
                assert_eq!(a.len(), b.len());
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (x - y).abs() <= 1e-5,
                        "{tile:?} {h}x{w}: element {i}: {x} vs {y}"
                    );
                }
            }
        }
    }
}
