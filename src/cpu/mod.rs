//! Naive CPU reference implementations of every op and of the whole lowered graph.
//!
//! These are deliberately the obvious loops (f32 storage, f64 accumulation): they define the
//! semantics the GPU kernels are tested against, so clarity beats speed. All tensors are NHWC
//! with a leading batch dimension; shapes come from the op's [`TensorInfo`]s.

use crate::graph::{
    BnRelu, BnReluOp, ConvOp, GlobalAvgPoolOp, Graph, MaxPoolOp, Op, PadValue, TensorInfo,
};

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
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    assert_eq!(ti.c, op.cin, "{}: input channels", op.name);
    assert_eq!(input.len(), batch * ti.len(), "{}: input length", op.name);
    let at = op.split.as_ref().map_or(op.cout, |s| s.at);
    assert_eq!(to.c, at, "{}: output channels", op.name);
    assert_eq!(op.weight.len(), op.kh * op.kw * op.cin * op.cout);
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
    let mut acc = vec![0f64; op.cout];
    for n in 0..batch {
        for oy in 0..to.h {
            for ox in 0..to.w {
                acc.iter_mut().for_each(|a| *a = 0.0);
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
                            let x = match &op.in_act {
                                Some(a) => bn_relu_one(input[base + ci], a, ci),
                                None => input[base + ci] as f64,
                            };
                            let wrow = ((ky * op.kw + kx) * op.cin + ci) * op.cout;
                            let w = &op.weight[wrow..wrow + op.cout];
                            for (a, &w) in acc.iter_mut().zip(w) {
                                *a += x * w as f64;
                            }
                        }
                    }
                }
                let pix = (n * to.h + oy) * to.w + ox;
                for (co, &a) in acc.iter().enumerate() {
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

/// Elementwise `relu(x * scale[c] + shift[c])`.
pub fn bn_relu(op: &BnReluOp, tensors: &[TensorInfo], batch: usize, input: &[f32]) -> Vec<f32> {
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    assert_eq!((to.h, to.w, to.c), (ti.h, ti.w, ti.c));
    assert_eq!(input.len(), batch * ti.len());
    input
        .iter()
        .enumerate()
        .map(|(i, &x)| bn_relu_one(x, &op.act, i % ti.c) as f32)
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
        let bn = BnReluOp {
            name: "b".into(),
            input: 0,
            output: 0,
            act,
        };
        assert_eq!(bn_relu(&bn, &tensors, 1, &x), [2.0, 0.0, 0.0, 1.0]);
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
}
