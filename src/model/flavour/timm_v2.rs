//! timm's `resnetv2_18..152` (pre-activation, torchvision-style strides): `stem.conv.weight`,
//! `stages.N.blocks.M.norm1.weight`, `head.fc.weight` (a 1x1 conv).

use super::{AxisOrder, Family, Rules, Spec, number, torch_names};
use crate::model::load::skeleton::{Part, Slot};
use crate::preprocess::{Filter, Preprocess, Resize};

pub(crate) struct TimmV2;

impl Spec for TimmV2 {
    fn name(&self) -> &'static str {
        "timm-v2"
    }

    fn rules(&self) -> Rules {
        Rules {
            family: Family::PreActivation,
            stem_norm: false,
            ..Rules::TORCH_V1
        }
    }

    /// timm `resolve_data_config` for resnetv2_50: input 224, crop_pct 0.95 (235 = floor(224 /
    /// 0.95)), bicubic, mean = std = 0.5.
    fn preprocess(&self) -> Preprocess {
        Preprocess::minus_one_one(Resize::ShorterThenCrop {
            resize: 235,
            crop: 224,
            filter: Filter::Bicubic,
        })
    }

    fn is_marker(&self, name: &str) -> bool {
        self.unit_index(name).is_some()
            || name.starts_with("stem.conv.")
            || name.starts_with("head.fc.")
    }

    fn layout(&self, _slot: Slot) -> AxisOrder {
        AxisOrder::Oihw
    }

    fn conv(&self, slot: Slot) -> (String, String) {
        torch_names::conv(&base(slot))
    }

    fn bn(&self, slot: Slot) -> [String; 4] {
        torch_names::bn(&base(slot))
    }

    fn unit_index(&self, name: &str) -> Option<(usize, usize)> {
        let (s, rest) = number(name.strip_prefix("stages.")?)?;
        let (u, rest) = number(rest.strip_prefix(".blocks.")?)?;
        rest.starts_with('.').then_some((s, u))
    }
}

fn base(slot: Slot) -> String {
    match slot {
        Slot::Stem => "stem.conv".into(),
        Slot::StemBn => "stem.norm".into(),
        Slot::PostNorm => "norm".into(),
        Slot::Classifier => "head.fc".into(),
        Slot::Unit { stage, unit, part } => {
            // timm numbers its norms by position: norm1 is the preact, norm{k+1} follows conv{k}.
            let p = match part {
                Part::Preact => "norm1".to_string(),
                Part::Conv(k) => format!("conv{k}"),
                Part::Bn(k) => format!("norm{}", k + 1),
                Part::Shortcut => "downsample.conv".to_string(),
                Part::ShortcutBn => "downsample.norm".to_string(),
            };
            format!("stages.{stage}.blocks.{unit}.{p}")
        }
    }
}
