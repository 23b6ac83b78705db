//! A checkpoint's tensors in one canonical form, whatever flavour they came from:
//! conv kernels HWIO (`[kh][kw][cin][cout]`, i.e. a `[K, Cout]` GEMM matrix with
//! `K = (kh, kw, cin)`), batch norms unfolded. Folding happens in `graph::lower`.

/// Inference batch norm: `y = (x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    /// Per-channel scale.
    pub gamma: Vec<f32>,
    /// Per-channel offset.
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    /// Added to the variance.
    pub eps: f32,
}

impl BatchNorm {
    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    /// The batch norm that changes nothing (eps 0, so that the folded scale is exactly 1):
    /// what a conv stands with whose batch norm an exporter already folded into it.
    pub fn identity(channels: usize) -> BatchNorm {
        BatchNorm {
            gamma: vec![1.0; channels],
            beta: vec![0.0; channels],
            mean: vec![0.0; channels],
            var: vec![1.0; channels],
            eps: 0.0,
        }
    }

    /// The per-channel `(scale, shift)` with `y = x * scale + shift`, computed in f64 so the
    /// folded weights are as close to the framework's unfolded arithmetic as f32 allows.
    pub fn scale_shift(&self) -> (Vec<f32>, Vec<f32>) {
        let mut scale = Vec::with_capacity(self.channels());
        let mut shift = Vec::with_capacity(self.channels());
        for c in 0..self.channels() {
            let s = self.gamma[c] as f64 / (self.var[c] as f64 + self.eps as f64).sqrt();
            scale.push(s as f32);
            shift.push((self.beta[c] as f64 - self.mean[c] as f64 * s) as f32);
        }
        (scale, shift)
    }
}

/// A convolution's weights, HWIO.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvWeights {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// `[kh][kw][cin][cout]`, row-major.
    pub weight: Vec<f32>,
    /// Per output channel, if the checkpoint has one.
    pub bias: Option<Vec<f32>>,
}

impl ConvWeights {
    /// Builds HWIO weights from a PyTorch OIHW tensor.
    pub fn from_oihw(oihw: &[f32], cout: usize, cin: usize, kh: usize, kw: usize) -> ConvWeights {
        let mut weight = vec![0.0; oihw.len()];
        for o in 0..cout {
            for i in 0..cin {
                for y in 0..kh {
                    for x in 0..kw {
                        weight[((y * kw + x) * cin + i) * cout + o] =
                            oihw[((o * cin + i) * kh + y) * kw + x];
                    }
                }
            }
        }
        ConvWeights {
            kh,
            kw,
            cin,
            cout,
            weight,
            bias: None,
        }
    }
}

/// One residual unit. Basic units use `conv1`/`conv2` (both 3x3) and leave `conv3` empty.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitParams {
    /// v2 only: BN+ReLU applied to the unit input.
    pub preact: Option<BatchNorm>,
    /// The first conv: a bottleneck's 1x1 reduce, a basic unit's first 3x3.
    pub conv1: ConvWeights,
    /// BN after conv1.
    pub bn1: BatchNorm,
    /// The second conv: the 3x3.
    pub conv2: ConvWeights,
    /// BN after conv2: always for bottlenecks; for basic units only in v1.
    pub bn2: Option<BatchNorm>,
    /// Bottlenecks only: the 1x1 expand.
    pub conv3: Option<ConvWeights>,
    /// v1 only: BN after the last conv.
    pub bn3: Option<BatchNorm>,
    /// Projection shortcut: a 1x1 conv, with a BN in v1.
    pub shortcut: Option<(ConvWeights, Option<BatchNorm>)>,
}

/// All of a network's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// A batch norm on the input image, without ReLU (MXNet Gluon's v2 starts with
    /// `BatchNorm(scale=False, center=False)`); no flavour's checkpoint has one.
    pub input_norm: Option<BatchNorm>,
    /// The stem conv.
    pub stem: ConvWeights,
    /// v1 only.
    pub stem_bn: Option<BatchNorm>,
    /// `stages[s][u]`.
    pub stages: Vec<Vec<UnitParams>>,
    /// v2 only.
    pub post_norm: Option<BatchNorm>,
    /// The classifier as a 1x1 conv: `cin` = features, `cout` = classes, with bias.
    pub classifier: ConvWeights,
}
