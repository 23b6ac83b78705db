//! Keras applications `ResNet50/101/152` (v1, Caffe-style) and `ResNet50V2/101V2/152V2`: one
//! naming scheme (`conv1_conv/kernel`, `conv2_block1_1_conv/kernel`, `predictions/kernel`), told
//! apart by the v2 pre-activation BNs.

use super::{
    AxisOrder, Biases, Family, Rules, ShortcutRule, Spec, StemPoolPadding, StrideConv, StrideUnit,
    number, strip_output_index,
};
use crate::model::load::skeleton::{Part, Slot};
use crate::preprocess::{Filter, Preprocess, Resize};

pub(crate) struct Keras {
    pub v2: bool,
}

/// `load_img(target_size=(224, 224))`: squash with Pillow's nearest.
const SQUASH_224: Resize = Resize::Squash {
    height: 224,
    width: 224,
    filter: Filter::Nearest,
};

/// Whether the names hold a v2 pre-activation or post-norm BN.
fn has_v2_bns(names: &[&str]) -> bool {
    names.iter().any(|n| {
        let n = strip_output_index(n);
        n.contains("_preact_bn/") || n.contains("post_bn/")
    })
}

impl Spec for Keras {
    fn name(&self) -> &'static str {
        if self.v2 { "keras-v2" } else { "keras-v1" }
    }

    fn rules(&self) -> Rules {
        if self.v2 {
            // slim's unit and stride placement with a zero-padded stem pool.
            Rules {
                family: Family::PreActivation,
                stride_unit: StrideUnit::Last,
                stride_conv: StrideConv::Spatial3x3,
                stem_pool: StemPoolPadding::KerasZero,
                shortcut: ShortcutRule::FirstUnitOfStage,
                stem_norm: false,
                bn_eps: 1.001e-5,
                biases: Biases {
                    stem: true,
                    inner: false,
                    last: true,
                    shortcut: true,
                },
            }
        } else {
            Rules {
                family: Family::PostActivation,
                stride_unit: StrideUnit::First,
                stride_conv: StrideConv::Reduce1x1,
                stem_pool: StemPoolPadding::KerasZero,
                shortcut: ShortcutRule::FirstUnitOfStage,
                stem_norm: true,
                bn_eps: 1.001e-5,
                biases: Biases {
                    stem: true,
                    inner: true,
                    last: true,
                    shortcut: true,
                },
            }
        }
    }

    fn preprocess(&self) -> Preprocess {
        if self.v2 {
            // preprocess_input mode "tf": x /= 127.5; x -= 1.
            Preprocess {
                resize: SQUASH_224,
                scale: 1.0 / 127.5,
                mean: [1.0; 3],
                std: [1.0; 3],
                bgr: false,
                alpha: Default::default(),
            }
        } else {
            // preprocess_input mode "caffe": RGB -> BGR, minus the BGR means, no scaling.
            Preprocess {
                resize: SQUASH_224,
                scale: 1.0,
                mean: [103.939, 116.779, 123.68],
                std: [1.0; 3],
                bgr: true,
                alpha: Default::default(),
            }
        }
    }

    fn is_marker(&self, name: &str) -> bool {
        let name = strip_output_index(name);
        let layer = name.rsplit('/').nth(1).unwrap_or("");
        layer == "conv1_conv"
            || layer == "post_bn"
            || self.unit_index(&format!("{layer}/")).is_some()
    }

    fn ruled_out_by(&self, names: &[&str]) -> bool {
        has_v2_bns(names) != self.v2
    }

    fn layout(&self, slot: Slot) -> AxisOrder {
        match slot {
            Slot::Classifier => AxisOrder::Dense,
            _ => AxisOrder::Hwio,
        }
    }

    fn conv(&self, slot: Slot) -> (String, String) {
        let b = base(slot);
        (format!("{b}/kernel"), format!("{b}/bias"))
    }

    fn bn(&self, slot: Slot) -> [String; 4] {
        let b = base(slot);
        ["gamma", "beta", "moving_mean", "moving_variance"].map(|f| format!("{b}/{f}"))
    }

    fn unit_index(&self, name: &str) -> Option<(usize, usize)> {
        let (s, rest) = number(name.strip_prefix("conv")?)?;
        let (u, rest) = number(rest.strip_prefix("_block")?)?;
        rest.starts_with('_')
            .then_some((s.checked_sub(2)?, u.checked_sub(1)?))
    }

    /// Keras names are `layer/variable`, possibly below a model name.
    fn canonical(&self, _scope: &str, name: &str) -> Option<String> {
        let mut parts = strip_output_index(name).rsplitn(3, '/');
        let var = parts.next()?;
        Some(match parts.next() {
            Some(layer) => format!("{layer}/{var}"),
            None => var.to_string(),
        })
    }
}

/// Keras only ships bottleneck nets. Basic units are named by the same scheme (`_1_conv`,
/// `_2_conv` and their BNs) so that any arch round-trips; no framework writes such files.
fn base(slot: Slot) -> String {
    match slot {
        Slot::Stem => "conv1_conv".into(),
        Slot::StemBn => "conv1_bn".into(),
        Slot::PostNorm => "post_bn".into(),
        Slot::Classifier => "predictions".into(),
        Slot::Unit { stage, unit, part } => {
            let p = match part {
                Part::Preact => "preact_bn".to_string(),
                Part::Conv(k) => format!("{k}_conv"),
                Part::Bn(k) => format!("{k}_bn"),
                Part::Shortcut => "0_conv".to_string(),
                Part::ShortcutBn => "0_bn".to_string(),
            };
            format!("conv{}_block{}_{p}", stage + 2, unit + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_names_lose_prefix_and_output_index() {
        let k = Keras { v2: true };
        assert_eq!(
            k.canonical("", "resnet50v2/conv2_block1_0_conv/kernel:0")
                .as_deref(),
            Some("conv2_block1_0_conv/kernel")
        );
        assert_eq!(
            k.canonical("", "conv1_conv/bias").as_deref(),
            Some("conv1_conv/bias")
        );
        assert_eq!(k.unit_index("conv5_block3_preact_bn/gamma"), Some((3, 2)));
        assert_eq!(k.unit_index("conv1_conv/kernel"), None);
    }
}
