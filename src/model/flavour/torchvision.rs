//! torchvision's `resnet18..152` (v1.5; timm's `resnet*` share it): `conv1.weight`,
//! `layerN.M.conv1.weight`, `fc.weight`.

use super::{AxisOrder, Rules, Spec, number, torch_names};
use crate::model::load::skeleton::{Part, Slot};
use crate::preprocess::{Filter, Preprocess, Resize};

pub(crate) struct Torchvision;

pub(crate) const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub(crate) const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// torchvision's `IMAGENET1K_V1` eval transform: shorter side 256 (Pillow bilinear), centre
/// crop 224, `(x/255 - mean) / std`. Also what the ONNX model zoo documents for its ResNets.
pub(crate) fn imagenet_256_224() -> Preprocess {
    Preprocess {
        resize: Resize::ShorterThenCrop {
            resize: 256,
            crop: 224,
            filter: Filter::Bilinear,
        },
        scale: 1.0 / 255.0,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        bgr: false,
        alpha: Default::default(),
    }
}

impl Spec for Torchvision {
    fn name(&self) -> &'static str {
        "torchvision"
    }

    fn rules(&self) -> Rules {
        Rules::TORCH_V1
    }

    fn preprocess(&self) -> Preprocess {
        imagenet_256_224()
    }

    fn is_marker(&self, name: &str) -> bool {
        self.unit_index(name).is_some()
            || matches!(name, "conv1.weight" | "bn1.weight" | "fc.weight")
    }

    fn layout(&self, slot: Slot) -> AxisOrder {
        match slot {
            Slot::Classifier => AxisOrder::Linear,
            _ => AxisOrder::Oihw,
        }
    }

    fn conv(&self, slot: Slot) -> (String, String) {
        torch_names::conv(&base(slot))
    }

    fn bn(&self, slot: Slot) -> [String; 4] {
        torch_names::bn(&base(slot))
    }

    fn unit_index(&self, name: &str) -> Option<(usize, usize)> {
        let (s, rest) = number(name.strip_prefix("layer")?)?;
        let (u, rest) = number(rest.strip_prefix('.')?)?;
        rest.starts_with('.').then_some((s.checked_sub(1)?, u))
    }
}

fn base(slot: Slot) -> String {
    match slot {
        Slot::Stem => "conv1".into(),
        Slot::StemBn => "bn1".into(),
        Slot::PostNorm => "norm".into(),
        Slot::Classifier => "fc".into(),
        Slot::Unit { stage, unit, part } => {
            let p = match part {
                Part::Preact => "preact".to_string(),
                Part::Conv(k) => format!("conv{k}"),
                Part::Bn(k) => format!("bn{k}"),
                Part::Shortcut => "downsample.0".to_string(),
                Part::ShortcutBn => "downsample.1".to_string(),
            };
            format!("layer{}.{unit}.{p}", stage + 1)
        }
    }
}
