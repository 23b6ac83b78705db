//! How a network computes, as far as the frameworks differ ([`Rules`]: unit structure, stride
//! placement, shortcuts, stem pool, eps, biases), and the names of the flavours of weights
//! people hold ([`Flavour`]). Plain data: the flavour registry (`model::flavour`) gives each
//! flavour its rules and names; the architecture (`model::arch`) carries the rules it runs by.

/// Where the batch-norm sits relative to the convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// v1 / v1.5: conv-BN-ReLU, ReLU after the residual add.
    PostActivation,
    /// v2: BN-ReLU-conv ("preact"), no ReLU after the add, post-norm before the pool.
    PreActivation,
}

/// Which unit of a stage downsamples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrideUnit {
    /// torchvision, timm, Keras v1, transformers: the first unit of stages 2..4.
    First,
    /// TF-slim and Keras v2: the last unit of stages 1..3.
    Last,
}

/// Which conv of a bottleneck unit carries the stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrideConv {
    /// The first 1x1 (Keras v1, the original paper, MXNet Gluon v1, transformers'
    /// `downsample_in_bottleneck`).
    Reduce1x1,
    /// The 3x3 (v1.5 and all v2).
    Spatial3x3,
}

/// How the stem's 3x3/2 max pool pads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StemPoolPadding {
    /// PyTorch `MaxPool2d(3, 2, padding=1)`: 1/1, padded with -inf.
    TorchNegInf,
    /// Keras `ZeroPadding2D(1)` + VALID pool: 1/1, padded with zeros.
    KerasZero,
    /// TF `padding='SAME'`: pad total `max((out-1)*2+3-n, 0)`, `total/2` before, -inf.
    TfSame,
}

/// When a unit gets a projection (1x1 conv) shortcut instead of the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShortcutRule {
    /// Projection iff the stride or the channel count changes (torchvision, timm, transformers).
    WhenShapeChanges,
    /// Projection in the first unit of every stage (Keras v1 / v2, slim with standard blocks).
    FirstUnitOfStage,
}

/// Which convs carry a bias (checkpoint-side; BN folding adds biases everywhere later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Biases {
    /// The stem conv.
    pub stem: bool,
    /// conv1 / conv2 of a bottleneck, conv1 of a basic unit.
    pub inner: bool,
    /// The unit's last conv (conv3 / basic conv2).
    pub last: bool,
    /// The projection shortcut's 1x1 conv.
    pub shortcut: bool,
}

impl Biases {
    /// No conv carries a bias.
    pub const NONE: Biases = Biases {
        stem: false,
        inner: false,
        last: false,
        shortcut: false,
    };
}

/// How a network computes, as far as it differs between the frameworks (`docs/models.md`,
/// "The rules per flavour"). A flavour has default rules; a config file (transformers) or the
/// graph itself (ONNX) may set others, so an [`Arch`](crate::model::Arch) carries its own copy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    /// Post- or pre-activation.
    pub family: Family,
    /// Which unit of a stage downsamples.
    pub stride_unit: StrideUnit,
    /// Which conv of a bottleneck carries the stride.
    pub stride_conv: StrideConv,
    /// How the stem max pool pads.
    pub stem_pool: StemPoolPadding,
    /// When a unit gets a projection shortcut.
    pub shortcut: ShortcutRule,
    /// The stem conv is followed by BN + ReLU (every v1; MXNet Gluon's v2 too).
    pub stem_norm: bool,
    /// The batch norms' epsilon.
    pub bn_eps: f32,
    /// Which convs carry a bias in the checkpoint.
    pub biases: Biases,
}

impl Rules {
    /// torchvision's v1.5: the rules most flavours start from.
    pub const TORCH_V1: Rules = Rules {
        family: Family::PostActivation,
        stride_unit: StrideUnit::First,
        stride_conv: StrideConv::Spatial3x3,
        stem_pool: StemPoolPadding::TorchNegInf,
        shortcut: ShortcutRule::WhenShapeChanges,
        stem_norm: true,
        bn_eps: 1e-5,
        biases: Biases::NONE,
    };
}

/// The flavours of weights people hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// TF-slim's `resnet_v2_*`.
    SlimV2,
    /// Keras' `ResNet50V2`, `ResNet101V2`, `ResNet152V2`.
    KerasV2,
    /// timm's `resnetv2_*`.
    TimmV2,
    /// torchvision's `resnet18` … `resnet152` (v1.5).
    Torchvision,
    /// Keras' `ResNet50`, `ResNet101`, `ResNet152`.
    KerasV1,
    /// Hugging Face transformers' `ResNetForImageClassification`.
    Hf,
}
