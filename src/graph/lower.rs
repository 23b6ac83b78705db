//! Lowering a network to fused ops: every batch norm that directly follows a conv is folded
//! into its weights and bias, the v2 pre-activation rides on the consuming convs' input loads,
//! the residual add rides on the epilogue of the conv producing the branch, and a unit's 1x1
//! reduce conv and 1x1 projection shortcut share one read of their input (one GEMM, split
//! output) whenever they read the same pixels.

use super::{
    BnRelu, BnReluOp, ConvOp, GlobalAvgPoolOp, Graph, MaxPoolOp, Op, PadValue, Residual,
    SplitOutput, TensorId, TensorInfo,
};
use crate::error::{Error, Result};
use crate::model::arch::{Family, StemPoolPadding, StrideConv, UnitKind};
use crate::model::params::{BatchNorm, ConvWeights, UnitParams};
use crate::model::{Arch, Params};

/// Lowering switches.
#[derive(Clone, Copy, Debug, Default)]
pub struct LowerOptions {
    /// Keep the `feat/*` maps alive (and materialise the v2 post-norm map) for read-back.
    pub features: bool,
}

/// The smallest input side every ResNet here accepts (stage 4 is then 1x1).
pub const MIN_INPUT_SIDE: usize = 32;

/// Most elements one image's tensor may hold: the kernels index tensors with u32.
pub const MAX_TENSOR_ELEMENTS: usize = u32::MAX as usize;

/// A conv's weights and bias after folding the following batch norm.
struct Folded {
    kh: usize,
    kw: usize,
    cin: usize,
    cout: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

fn fold(conv: &ConvWeights, bn: Option<&BatchNorm>) -> Folded {
    let cout = conv.cout;
    let bias0 = |o: usize| conv.bias.as_ref().map_or(0.0, |b| b[o]);
    let (weight, bias) = match bn {
        None => (conv.weight.clone(), (0..cout).map(bias0).collect()),
        Some(bn) => {
            let (scale, shift) = bn.scale_shift();
            let weight = conv
                .weight
                .iter()
                .enumerate()
                .map(|(i, w)| w * scale[i % cout])
                .collect();
            let bias = (0..cout)
                .map(|o| (bias0(o) as f64 * scale[o] as f64 + shift[o] as f64) as f32)
                .collect();
            (weight, bias)
        }
    };
    Folded {
        kh: conv.kh,
        kw: conv.kw,
        cin: conv.cin,
        cout,
        weight,
        bias,
    }
}

/// Concatenates two `[K, Cout]` GEMM matrices with the same K along Cout.
fn concat_cout(a: Folded, b: Folded) -> Folded {
    debug_assert_eq!((a.kh, a.kw, a.cin), (b.kh, b.kw, b.cin));
    let k = a.kh * a.kw * a.cin;
    let mut weight = Vec::with_capacity(k * (a.cout + b.cout));
    for row in 0..k {
        weight.extend_from_slice(&a.weight[row * a.cout..(row + 1) * a.cout]);
        weight.extend_from_slice(&b.weight[row * b.cout..(row + 1) * b.cout]);
    }
    Folded {
        kh: a.kh,
        kw: a.kw,
        cin: a.cin,
        cout: a.cout + b.cout,
        weight,
        bias: a.bias.into_iter().chain(b.bias).collect(),
    }
}

fn bn_relu(bn: &BatchNorm) -> BnRelu {
    let (scale, shift) = bn.scale_shift();
    BnRelu { scale, shift }
}

/// Output side of a `k`/`stride` window with symmetric padding `pad`.
fn out_side(n: usize, k: usize, stride: usize, pad: usize) -> usize {
    (n + 2 * pad - k) / stride + 1
}

/// How a conv is wired into the graph.
struct ConvSpec<'a> {
    name: String,
    input: TensorId,
    stride: usize,
    in_act: Option<&'a BatchNorm>,
    residual: Option<Residual>,
    relu: bool,
}

impl<'a> ConvSpec<'a> {
    /// A conv reading `input` with nothing fused around it but an optional ReLU.
    fn new(name: String, input: TensorId, stride: usize, relu: bool) -> ConvSpec<'a> {
        ConvSpec {
            name,
            input,
            stride,
            in_act: None,
            residual: None,
            relu,
        }
    }

    /// Applies a v2 pre-activation BN+ReLU to the input as it is loaded.
    fn preact(self, bn: Option<&'a BatchNorm>) -> ConvSpec<'a> {
        ConvSpec { in_act: bn, ..self }
    }

    /// Adds a residual in the epilogue.
    fn residual(self, r: Residual) -> ConvSpec<'a> {
        ConvSpec {
            residual: Some(r),
            ..self
        }
    }
}

struct Builder {
    tensors: Vec<TensorInfo>,
    ops: Vec<Op>,
    features: Vec<(String, TensorId)>,
}

impl Builder {
    /// Adds a tensor; its elements per image must be addressable by the kernels' u32 indices.
    // On wasm32 `usize` is 32 bits, so the bound is `usize::MAX` and the overflow check
    // (`checked_mul`) alone enforces it; the comparison is for 64-bit targets.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::absurd_extreme_comparisons))]
    fn tensor(&mut self, name: String, h: usize, w: usize, c: usize) -> Result<TensorId> {
        let len = h.checked_mul(w).and_then(|hw| hw.checked_mul(c));
        if len.is_none_or(|len| len > MAX_TENSOR_ELEMENTS) {
            let input = &self.tensors.first().map_or((h, w), |t| (t.h, t.w));
            return Err(Error::Input(format!(
                "a {}x{} input makes `{name}` {h}x{w}x{c}, more than the {MAX_TENSOR_ELEMENTS} \
                 values per image the kernels can address; use a smaller input size",
                input.0, input.1
            )));
        }
        self.tensors.push(TensorInfo { name, h, w, c });
        Ok(self.tensors.len() - 1)
    }

    fn check_input(&self, name: &str, t: TensorId, cin: usize) -> Result<()> {
        let have = self.tensors[t].c;
        if have != cin {
            return Err(Error::Input(format!(
                "{name}: conv expects {cin} input channels but its input `{}` has {have}",
                self.tensors[t].name
            )));
        }
        Ok(())
    }

    /// Adds a conv; returns its output (and, for a split conv, the second output).
    fn conv(&mut self, spec: ConvSpec, f: Folded, split_at: Option<usize>) -> Result<TensorId> {
        self.check_input(&spec.name, spec.input, f.cin)?;
        let inp = self.tensors[spec.input].clone();
        let pad = (f.kh - 1) / 2;
        let (oh, ow) = (
            out_side(inp.h, f.kh, spec.stride, pad),
            out_side(inp.w, f.kw, spec.stride, pad),
        );
        let first_c = split_at.unwrap_or(f.cout);
        let output = self.tensor(spec.name.clone(), oh, ow, first_c)?;
        let split = match split_at {
            Some(at) => Some(SplitOutput {
                at,
                tensor: self.tensor(format!("{}:shortcut", spec.name), oh, ow, f.cout - at)?,
                relu: false,
            }),
            None => None,
        };
        self.ops.push(Op::Conv(ConvOp {
            name: spec.name,
            input: spec.input,
            output,
            kh: f.kh,
            kw: f.kw,
            stride: spec.stride,
            pad,
            cin: f.cin,
            cout: f.cout,
            weight: f.weight,
            bias: f.bias,
            in_act: spec.in_act.map(bn_relu),
            residual: spec.residual,
            relu: spec.relu,
            split,
        }));
        Ok(output)
    }

    fn split_second(&self, conv_output: TensorId) -> TensorId {
        match self.ops.last() {
            Some(Op::Conv(ConvOp {
                output,
                split: Some(s),
                ..
            })) if *output == conv_output => s.tensor,
            _ => unreachable!("split_second follows a split conv"),
        }
    }
}

/// Lowers `arch` with `params` at input size `h x w` to fused ops.
pub fn lower(
    arch: &Arch,
    params: &Params,
    h: usize,
    w: usize,
    opts: &LowerOptions,
) -> Result<Graph> {
    if h < MIN_INPUT_SIDE || w < MIN_INPUT_SIDE {
        return Err(Error::Input(format!(
            "input size {h}x{w} is below the minimum {MIN_INPUT_SIDE}x{MIN_INPUT_SIDE}"
        )));
    }
    if params.stages.len() != arch.stages.len()
        || params
            .stages
            .iter()
            .zip(&arch.stages)
            .any(|(p, s)| p.len() != s.units)
    {
        return Err(Error::Input(
            "parameters and architecture disagree on the units per stage".into(),
        ));
    }
    let v2 = arch.family() == Family::PreActivation;
    let mut b = Builder {
        tensors: Vec::new(),
        ops: Vec::new(),
        features: Vec::new(),
    };
    let input = b.tensor("input".into(), h, w, arch.in_channels)?;
    let mut x = input;
    if let Some(bn) = &params.input_norm {
        x = b.tensor("input_norm".into(), h, w, arch.in_channels)?;
        b.ops.push(Op::BnRelu(BnReluOp {
            name: "input_norm".into(),
            input,
            output: x,
            act: bn_relu(bn),
            relu: false,
        }));
    }

    // Stem: v1 folds its BN and applies ReLU; v2 has neither (the first unit's preact does
    // it), except MXNet Gluon's v2, whose stem is v1's.
    let stem = b.conv(
        ConvSpec::new("stem/conv".into(), x, 2, arch.rules.stem_norm),
        fold(&params.stem, params.stem_bn.as_ref()),
        None,
    )?;
    b.features.push(("feat/stem_conv".into(), stem));
    let pooled_stem = stem_pool(&mut b, arch.rules.stem_pool, stem)?;
    b.features.push(("feat/stem_pool".into(), pooled_stem));

    x = pooled_stem;
    for (s, stage) in params.stages.iter().enumerate() {
        for (u, unit) in stage.iter().enumerate() {
            let name = format!("stage{}/unit{}", s + 1, u + 1);
            let stride = arch.unit_stride(s, u);
            x = match (v2, arch.unit) {
                (true, UnitKind::Bottleneck) => {
                    v2_bottleneck(&mut b, &name, x, unit, stride, arch.rules.stride_conv)?
                }
                (true, UnitKind::Basic) => v2_basic(&mut b, &name, x, unit, stride)?,
                (false, kind) => {
                    v1_unit(&mut b, &name, x, unit, stride, kind, arch.rules.stride_conv)?
                }
            };
        }
        b.features.push((format!("feat/stage{}", s + 1), x));
    }

    // Head: v2 post-norm (fused into the pool unless its map is wanted), mean, classifier.
    let c = b.tensors[x].c;
    let mut pool_act = match (v2, &params.post_norm) {
        (true, Some(bn)) => Some(bn_relu(bn)),
        (true, None) => return Err(Error::Input("a v2 network needs a post-norm".into())),
        (false, _) => None,
    };
    if opts.features && pool_act.is_some() {
        let t = &b.tensors[x];
        let post = b.tensor("post_norm".into(), t.h, t.w, c)?;
        b.ops.push(Op::BnRelu(BnReluOp {
            name: "post_norm".into(),
            input: x,
            output: post,
            act: pool_act.take().expect("checked"),
            relu: true,
        }));
        b.features.push(("feat/post_norm".into(), post));
        x = post;
    }
    let pooled = b.tensor("pooled".into(), 1, 1, c)?;
    b.ops.push(Op::GlobalAvgPool(GlobalAvgPoolOp {
        name: "global_pool".into(),
        input: x,
        output: pooled,
        in_act: pool_act,
    }));
    b.features.push(("feat/pooled".into(), pooled));
    let logits = b.conv(
        ConvSpec::new("classifier".into(), pooled, 1, false),
        fold(&params.classifier, None),
        None,
    )?;
    if !opts.features {
        b.features.clear();
    }
    for op in &b.ops {
        check_constants(op)?;
    }
    Ok(Graph {
        tensors: b.tensors,
        ops: b.ops,
        input,
        logits,
        features: b.features,
    })
}

/// Folding can overflow (a huge gamma over a tiny variance): every constant the kernels will
/// read must be finite, or a NaN would be swallowed by a ReLU into a finite, wrong answer.
fn check_constants(op: &Op) -> Result<()> {
    fn act(a: &Option<BnRelu>) -> Vec<&[f32]> {
        a.iter()
            .flat_map(|a| [&a.scale[..], &a.shift[..]])
            .collect()
    }
    let sections: Vec<&[f32]> = match op {
        Op::Conv(o) => [&o.weight[..], &o.bias[..]]
            .into_iter()
            .chain(act(&o.in_act))
            .collect(),
        Op::MaxPool(_) => Vec::new(),
        Op::GlobalAvgPool(o) => act(&o.in_act),
        Op::BnRelu(o) => vec![&o.act.scale[..], &o.act.shift[..]],
    };
    for values in sections {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!(
                "`{}`: folding the batch norms gives a non-finite constant ({} at index {i}); the \
                 checkpoint's weights or batch-norm statistics are out of range (e.g. a negative \
                 running variance)",
                op.name(),
                values[i],
            )));
        }
    }
    Ok(())
}

fn stem_pool(b: &mut Builder, rule: StemPoolPadding, x: TensorId) -> Result<TensorId> {
    let t = b.tensors[x].clone();
    let (pad_top, pad_left, pad_value, oh, ow) = match rule {
        StemPoolPadding::TorchNegInf | StemPoolPadding::KerasZero => (
            1,
            1,
            if rule == StemPoolPadding::KerasZero {
                PadValue::Zero
            } else {
                PadValue::NegInf
            },
            out_side(t.h, 3, 2, 1),
            out_side(t.w, 3, 2, 1),
        ),
        StemPoolPadding::TfSame => {
            // TF SAME: out = ceil(n / 2), total pad = max((out - 1) * 2 + 3 - n, 0), the
            // smaller half before: for even n that is 0 before, 1 after.
            let same = |n: usize| {
                let out = n.div_ceil(2);
                (((out - 1) * 2 + 3).saturating_sub(n) / 2, out)
            };
            let ((top, oh), (left, ow)) = (same(t.h), same(t.w));
            (top, left, PadValue::NegInf, oh, ow)
        }
    };
    let out = b.tensor("stem/pool".into(), oh, ow, t.c)?;
    b.ops.push(Op::MaxPool(MaxPoolOp {
        name: "stem/pool".into(),
        input: x,
        output: out,
        size: 3,
        stride: 2,
        pad_top,
        pad_left,
        pad_value,
    }));
    Ok(out)
}

/// The 1x1 reduce conv and, when it reads the same pixels, the projection shortcut as one
/// split GEMM. Returns (reduce output, shortcut output if merged).
fn reduce_and_projection(
    b: &mut Builder,
    name: &str,
    x: TensorId,
    reduce: Folded,
    reduce_stride: usize,
    projection: Option<(Folded, usize)>,
    in_act: Option<&BatchNorm>,
) -> Result<(TensorId, Option<TensorId>)> {
    match projection {
        Some((proj, proj_stride)) if proj_stride == reduce_stride && proj.kh == 1 => {
            let at = reduce.cout;
            let out = b.conv(
                ConvSpec::new(format!("{name}/conv1+shortcut"), x, reduce_stride, true)
                    .preact(in_act),
                concat_cout(reduce, proj),
                Some(at),
            )?;
            let shortcut = b.split_second(out);
            Ok((out, Some(shortcut)))
        }
        Some((proj, proj_stride)) => {
            let shortcut = b.conv(
                ConvSpec::new(format!("{name}/shortcut"), x, proj_stride, false).preact(in_act),
                proj,
                None,
            )?;
            let out = b.conv(
                ConvSpec::new(format!("{name}/conv1"), x, reduce_stride, true).preact(in_act),
                reduce,
                None,
            )?;
            Ok((out, Some(shortcut)))
        }
        None => {
            let out = b.conv(
                ConvSpec::new(format!("{name}/conv1"), x, reduce_stride, true).preact(in_act),
                reduce,
                None,
            )?;
            Ok((out, None))
        }
    }
}

/// The residual for the unit's last conv: the projection output, or the raw unit input
/// (subsampled `x[::s, ::s]` when the unit strides without a projection: slim/Keras v2).
fn residual_of(shortcut: Option<TensorId>, x: TensorId, stride: usize) -> Residual {
    match shortcut {
        Some(t) => Residual {
            tensor: t,
            stride: 1,
        },
        None => Residual { tensor: x, stride },
    }
}

fn missing(name: &str, what: &str) -> Error {
    Error::Input(format!("{name}: missing {what}"))
}

fn v2_bottleneck(
    b: &mut Builder,
    name: &str,
    x: TensorId,
    unit: &UnitParams,
    stride: usize,
    stride_conv: StrideConv,
) -> Result<TensorId> {
    let preact = unit
        .preact
        .as_ref()
        .ok_or_else(|| missing(name, "preact"))?;
    let projection = unit
        .shortcut
        .as_ref()
        .map(|(conv, bn)| (fold(conv, bn.as_ref()), stride));
    // Every v2 flavour strides the 3x3; a graph that strides the reduce conv instead (the ONNX
    // loader reads either off the graph) gets it there, as for v1.
    let (s1, s2) = match stride_conv {
        StrideConv::Reduce1x1 => (stride, 1),
        StrideConv::Spatial3x3 => (1, stride),
    };
    let (r1, shortcut) = reduce_and_projection(
        b,
        name,
        x,
        fold(&unit.conv1, Some(&unit.bn1)),
        s1,
        projection,
        Some(preact),
    )?;
    let r2 = b.conv(
        ConvSpec::new(format!("{name}/conv2"), r1, s2, true),
        fold(&unit.conv2, unit.bn2.as_ref()),
        None,
    )?;
    let conv3 = unit.conv3.as_ref().ok_or_else(|| missing(name, "conv3"))?;
    b.conv(
        ConvSpec::new(format!("{name}/conv3"), r2, 1, false)
            .residual(residual_of(shortcut, x, stride)),
        fold(conv3, None),
        None,
    )
}

fn v2_basic(
    b: &mut Builder,
    name: &str,
    x: TensorId,
    unit: &UnitParams,
    stride: usize,
) -> Result<TensorId> {
    let preact = unit
        .preact
        .as_ref()
        .ok_or_else(|| missing(name, "preact"))?;
    let shortcut = match &unit.shortcut {
        Some((conv, bn)) => Some(b.conv(
            ConvSpec::new(format!("{name}/shortcut"), x, stride, false).preact(Some(preact)),
            fold(conv, bn.as_ref()),
            None,
        )?),
        None => None,
    };
    let r1 = b.conv(
        ConvSpec::new(format!("{name}/conv1"), x, stride, true).preact(Some(preact)),
        fold(&unit.conv1, Some(&unit.bn1)),
        None,
    )?;
    b.conv(
        ConvSpec::new(format!("{name}/conv2"), r1, 1, false)
            .residual(residual_of(shortcut, x, stride)),
        fold(&unit.conv2, unit.bn2.as_ref()),
        None,
    )
}

fn v1_unit(
    b: &mut Builder,
    name: &str,
    x: TensorId,
    unit: &UnitParams,
    stride: usize,
    kind: UnitKind,
    stride_conv: StrideConv,
) -> Result<TensorId> {
    let projection = unit
        .shortcut
        .as_ref()
        .map(|(conv, bn)| (fold(conv, bn.as_ref()), stride));
    let (last_input, shortcut, last_conv, last_bn) = match kind {
        UnitKind::Bottleneck => {
            let (s1, s2) = match stride_conv {
                StrideConv::Reduce1x1 => (stride, 1),
                StrideConv::Spatial3x3 => (1, stride),
            };
            let (r1, shortcut) = reduce_and_projection(
                b,
                name,
                x,
                fold(&unit.conv1, Some(&unit.bn1)),
                s1,
                projection,
                None,
            )?;
            let r2 = b.conv(
                ConvSpec::new(format!("{name}/conv2"), r1, s2, true),
                fold(&unit.conv2, unit.bn2.as_ref()),
                None,
            )?;
            let conv3 = unit.conv3.as_ref().ok_or_else(|| missing(name, "conv3"))?;
            (r2, shortcut, conv3, unit.bn3.as_ref())
        }
        UnitKind::Basic => {
            let shortcut = match projection {
                Some((proj, s)) => Some(b.conv(
                    ConvSpec::new(format!("{name}/shortcut"), x, s, false),
                    proj,
                    None,
                )?),
                None => None,
            };
            let r1 = b.conv(
                ConvSpec::new(format!("{name}/conv1"), x, stride, true),
                fold(&unit.conv1, Some(&unit.bn1)),
                None,
            )?;
            (r1, shortcut, &unit.conv2, unit.bn2.as_ref())
        }
    };
    let last_name = match kind {
        UnitKind::Bottleneck => "conv3",
        UnitKind::Basic => "conv2",
    };
    b.conv(
        ConvSpec::new(format!("{name}/{last_name}"), last_input, 1, true)
            .residual(residual_of(shortcut, x, stride)),
        fold(last_conv, last_bn),
        None,
    )
}
