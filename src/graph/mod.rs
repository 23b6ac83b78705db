//! The lowered network: a flat, ordered list of fused ops over NHWC tensors, with batch norms
//! already folded. This is what the CPU reference, the planner and the GPU session all consume.
//!
//! Shapes here are *per image* (`h, w, c`); the batch is a property of a plan.

mod lower;

pub use lower::{LowerOptions, lower};

use crate::winograd::{self, Tile};

/// Index into [`Graph::tensors`].
pub type TensorId = usize;

/// An activation tensor, NHWC, per image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl TensorInfo {
    /// Elements per image.
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A per-channel `relu(x * scale + shift)`: an unfoldable v2 batch norm (preact, post-norm).
#[derive(Clone, Debug, PartialEq)]
pub struct BnRelu {
    /// Per-channel multiplier.
    pub scale: Vec<f32>,
    /// Per-channel offset, added after the multiplier.
    pub shift: Vec<f32>,
}

/// `out[n, y, x, c] += residual[n, y * stride, x * stride, c]` before the activation.
/// `stride` 2 is slim's/Keras' subsampled identity shortcut `x[:, ::2, ::2]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Residual {
    /// The tensor added.
    pub tensor: TensorId,
    /// Its sampling stride (1 or 2).
    pub stride: usize,
}

/// Output channels `[at, cout)` of a conv go to a second tensor (with their own activation):
/// this is how a v2 unit's first 1x1 conv and its projection shortcut share one read of the
/// pre-activated input (their weights are concatenated along Cout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitOutput {
    /// First output channel that goes to `tensor`.
    pub at: usize,
    /// The second output tensor.
    pub tensor: TensorId,
    /// Whether ReLU applies to the channels that go to `tensor`.
    pub relu: bool,
}

/// A convolution as an implicit GEMM with everything around it fused:
///
/// `out = act(conv(in_act(input)) + bias [+ residual])`
///
/// * `in_act`: optional v2 pre-activation BN+ReLU, applied to in-bounds input elements only
///   (the conv's zero padding pads the *pre-activated* map, as in the frameworks);
/// * `weight`: `[kh][kw][cin][cout]` (HWIO = a `[K, Cout]` matrix), batch norm folded in;
/// * `act`: ReLU or identity; padding is symmetric `pad` on all sides except that the output
///   size is that of the output tensor (`floor((n + 2 pad - k) / stride) + 1`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvOp {
    /// The op's name.
    pub name: String,
    /// Input tensor.
    pub input: TensorId,
    /// Output tensor.
    pub output: TensorId,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// `[kh][kw][cin][cout]`, batch norm folded in.
    pub weight: Vec<f32>,
    /// Per output channel, batch norm folded in.
    pub bias: Vec<f32>,
    /// The v2 pre-activation applied to the input, if any.
    pub in_act: Option<BnRelu>,
    /// A residual added before the activation, if any.
    pub residual: Option<Residual>,
    /// ReLU after the bias and residual.
    pub relu: bool,
    /// Output channels that go to a second tensor, if any.
    pub split: Option<SplitOutput>,
}

/// What the stem max pool pads with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadValue {
    /// Negative infinity (PyTorch, TF).
    NegInf,
    /// Zero (Keras' `ZeroPadding2D`).
    Zero,
}

/// A `size x size / stride` max pool with explicit top/left padding; positions outside the
/// input read `pad_value`. The output size is the output tensor's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxPoolOp {
    /// The op's name.
    pub name: String,
    /// Input tensor.
    pub input: TensorId,
    /// Output tensor.
    pub output: TensorId,
    /// Window side.
    pub size: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Rows of padding above the input.
    pub pad_top: usize,
    /// Columns of padding left of the input.
    pub pad_left: usize,
    /// What padded positions read.
    pub pad_value: PadValue,
}

/// Mean over H and W, optionally of `bn_relu(x)` (the fused v2 post-norm). Output `1 x 1 x C`.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalAvgPoolOp {
    /// The op's name.
    pub name: String,
    /// Input tensor.
    pub input: TensorId,
    /// Output tensor, `1 x 1 x C`.
    pub output: TensorId,
    /// The fused v2 post-norm applied before averaging, if any.
    pub in_act: Option<BnRelu>,
}

/// Elementwise `relu(x * scale + shift)` (or, with `relu` off, just the affine): emitted to
/// materialise the v2 post-norm map when features are requested (otherwise it is fused into
/// the pool), and as the input normalisation of MXNet Gluon's v2 (a batch norm on the image,
/// which cannot fold into the stem conv exactly because the conv zero-pads its output).
#[derive(Clone, Debug, PartialEq)]
pub struct BnReluOp {
    /// The op's name.
    pub name: String,
    /// Input tensor.
    pub input: TensorId,
    /// Output tensor.
    pub output: TensorId,
    /// The per-channel affine.
    pub act: BnRelu,
    /// Whether ReLU follows the affine.
    pub relu: bool,
}

#[derive(Clone, Debug, PartialEq)]
/// One op of a lowered network.
pub enum Op {
    /// A convolution with its fused epilogue.
    Conv(ConvOp),
    /// The stem's max pool.
    MaxPool(MaxPoolOp),
    /// The global average pool before the classifier.
    GlobalAvgPool(GlobalAvgPoolOp),
    /// An elementwise batch norm (+ ReLU).
    BnRelu(BnReluOp),
}

impl Op {
    /// The op's name.
    pub fn name(&self) -> &str {
        match self {
            Op::Conv(o) => &o.name,
            Op::MaxPool(o) => &o.name,
            Op::GlobalAvgPool(o) => &o.name,
            Op::BnRelu(o) => &o.name,
        }
    }

    /// Tensors this op reads.
    pub fn inputs(&self) -> Vec<TensorId> {
        match self {
            Op::Conv(o) => std::iter::once(o.input)
                .chain(o.residual.as_ref().map(|r| r.tensor))
                .collect(),
            Op::MaxPool(o) => vec![o.input],
            Op::GlobalAvgPool(o) => vec![o.input],
            Op::BnRelu(o) => vec![o.input],
        }
    }

    /// Tensors this op writes.
    pub fn outputs(&self) -> Vec<TensorId> {
        match self {
            Op::Conv(o) => std::iter::once(o.output)
                .chain(o.split.as_ref().map(|s| s.tensor))
                .collect(),
            Op::MaxPool(o) => vec![o.output],
            Op::GlobalAvgPool(o) => vec![o.output],
            Op::BnRelu(o) => vec![o.output],
        }
    }

    /// The op's constants as they are laid out in the GPU weights buffer, in f32 elements.
    /// Every section is padded with zeros to a multiple of 4 elements (`pad4`) so the shaders
    /// can read them as `vec4<f32>` (weights along cout, scale/shift along channels) and every
    /// section starts 16-byte aligned (the slot itself must start at a multiple of
    /// `min_storage_buffer_offset_alignment`):
    ///
    /// * conv: `weight [kh][kw][cin][pad4(cout)] | bias [pad4(cout)]` and, with `in_act`,
    ///   `| scale [pad4(cin)] | shift [pad4(cin)]`;
    /// * pools / bn_relu: `[scale [pad4(c)] | shift [pad4(c)]]` (nothing for max pool).
    pub fn constants(&self) -> Vec<f32> {
        fn padded(v: &[f32]) -> impl Iterator<Item = f32> + '_ {
            v.iter()
                .copied()
                .chain(std::iter::repeat_n(0.0, pad4(v.len()) - v.len()))
        }
        let act = |a: &Option<BnRelu>| {
            a.iter()
                .flat_map(|a| padded(&a.scale).chain(padded(&a.shift)))
                .collect::<Vec<f32>>()
        };
        match self {
            Op::Conv(o) => {
                let coutp = pad4(o.cout);
                let k = o.kh * o.kw * o.cin;
                let mut v = Vec::with_capacity((k + 1) * coutp + 2 * pad4(o.cin));
                for row in o.weight.chunks_exact(o.cout) {
                    v.extend(padded(row));
                }
                v.extend(padded(&o.bias));
                v.extend(act(&o.in_act));
                v
            }
            Op::MaxPool(_) => Vec::new(),
            Op::GlobalAvgPool(o) => act(&o.in_act),
            Op::BnRelu(o) => act(&Some(o.act.clone())),
        }
    }

    /// The op's constants laid out for its algorithm: [`Op::constants`], except for a conv
    /// computed by Winograd's `F(m, 3)` ([`ConvOp::winograd_constants`]).
    pub fn constants_for(&self, winograd: Option<Tile>) -> Vec<f32> {
        match (self, winograd) {
            (Op::Conv(o), Some(tile)) => o.winograd_constants(tile),
            _ => self.constants(),
        }
    }

    /// `self.constants_for(winograd).len()`, without building them.
    pub fn constants_len_for(&self, winograd: Option<Tile>) -> usize {
        match (self, winograd) {
            (Op::Conv(o), Some(tile)) => {
                let act = o.in_act.as_ref().map_or(0, |_| 2 * pad4(o.cin));
                (tile.points() * o.cin + 1) * pad4(o.cout) + act
            }
            _ => self.constants_len(),
        }
    }

    /// `self.constants().len()`, without building them.
    pub fn constants_len(&self) -> usize {
        // Mirrors the padded layout of `constants()`.
        let act = |a: &Option<BnRelu>| a.as_ref().map_or(0, |a| 2 * pad4(a.scale.len()));
        match self {
            Op::Conv(o) => (o.kh * o.kw * o.cin + 1) * pad4(o.cout) + act(&o.in_act),
            Op::MaxPool(_) => 0,
            Op::GlobalAvgPool(o) => act(&o.in_act),
            Op::BnRelu(o) => 2 * pad4(o.act.scale.len()),
        }
    }

    /// Multiply-adds per image (convs only; pools and elementwise ops count 0).
    pub fn macs_per_image(&self, tensors: &[TensorInfo]) -> u64 {
        match self {
            Op::Conv(o) => {
                let out = &tensors[o.output];
                (out.h * out.w) as u64 * (o.kh * o.kw * o.cin) as u64 * o.cout as u64
            }
            _ => 0,
        }
    }
}

impl ConvOp {
    /// The constants of a 3x3 conv computed by Winograd: `U [a^2][cin][pad4(cout)]` (the
    /// filter transform `G g G^T` of the BN-folded weights, in f64, rounded once; point-major,
    /// so point `ξν` is one `cin x cout` GEMM matrix) `| bias [pad4(cout)]` and, with `in_act`,
    /// `| scale [pad4(cin)] | shift [pad4(cin)]` (applied by the input transform).
    pub fn winograd_constants(&self, tile: Tile) -> Vec<f32> {
        assert_eq!(
            (self.kh, self.kw),
            (3, 3),
            "{}: Winograd takes 3x3 convs",
            self.name
        );
        let coutp = pad4(self.cout);
        let u = winograd::transform_filters(tile, &self.weight, self.cin, self.cout);
        let mut v = Vec::with_capacity((tile.points() * self.cin + 1) * coutp + 2 * pad4(self.cin));
        for row in u.chunks_exact(self.cout) {
            v.extend(row.iter().map(|&x| x as f32));
            v.extend(std::iter::repeat_n(0.0, coutp - self.cout));
        }
        let padded = |x: &[f32]| {
            x.iter()
                .copied()
                .chain(std::iter::repeat_n(0.0, pad4(x.len()) - x.len()))
                .collect::<Vec<f32>>()
        };
        v.extend(padded(&self.bias));
        if let Some(a) = &self.in_act {
            v.extend(padded(&a.scale));
            v.extend(padded(&a.shift));
        }
        v
    }
}

/// `n` rounded up to a multiple of 4: the padded length of every section of
/// [`Op::constants`].
pub fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// A lowered network.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Every tensor, indexed by [`TensorId`].
    pub tensors: Vec<TensorInfo>,
    /// The ops in execution order.
    pub ops: Vec<Op>,
    /// The input image tensor.
    pub input: TensorId,
    /// `1 x 1 x classes`.
    pub logits: TensorId,
    /// Intermediate maps kept alive for read-back (`feat/stem_conv`, …), in network order.
    pub features: Vec<(String, TensorId)>,
}

impl Graph {
    /// Multiply-adds per image, summed over the ops.
    pub fn macs_per_image(&self) -> u64 {
        self.ops
            .iter()
            .map(|o| o.macs_per_image(&self.tensors))
            .sum()
    }

    /// Number of classes (the logits' channels).
    pub fn classes(&self) -> usize {
        self.tensors[self.logits].c
    }
}
