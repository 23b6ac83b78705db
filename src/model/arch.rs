//! The network description as plain data: which ResNet, with which of the five real-world
//! flavours' rules (see `docs/models.md`). Nothing here knows about weights or GPUs.

use crate::error::{Error, Result};

pub use crate::model::rules::{
    Biases, Family, Flavour, Rules, ShortcutRule, StemPoolPadding, StrideConv, StrideUnit,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The kind of residual unit.
pub enum UnitKind {
    /// Two 3x3 convs (ResNet-18/34).
    Basic,
    /// 1x1 reduce, 3x3, 1x1 expand x4 (ResNet-50 and deeper).
    Bottleneck,
}

/// One stage: `units` residual units, `width` inner channels, `out` output channels
/// (`4 * width` for bottlenecks, `width` for basic units), downsampling by `stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Residual units.
    pub units: usize,
    /// Inner channels.
    pub width: usize,
    /// Output channels.
    pub out: usize,
    /// Downsampling stride (1 or 2).
    pub stride: usize,
}

/// A complete ResNet: the rules it computes by plus the sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    /// Whose names and layouts the weights use (and whose preprocessing is the default).
    pub flavour: Flavour,
    /// How the network computes: the flavour's rules unless a config file or an ONNX graph
    /// said otherwise.
    pub rules: Rules,
    /// Basic or bottleneck units.
    pub unit: UnitKind,
    /// Channels of the input image.
    pub in_channels: usize,
    /// Output channels of the stem conv.
    pub stem_width: usize,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// Number of output classes.
    pub classes: usize,
}

impl Arch {
    /// Post- or pre-activation.
    pub fn family(&self) -> Family {
        self.rules.family
    }

    /// Builds the standard stage table for a flavour (with its rules), block kind and units per
    /// stage, with stage widths `widths` (bottleneck inner widths or basic widths).
    pub fn new(
        flavour: Flavour,
        unit: UnitKind,
        units: &[usize],
        widths: &[usize],
        stem_width: usize,
        classes: usize,
    ) -> Arch {
        let expansion = match unit {
            UnitKind::Basic => 1,
            UnitKind::Bottleneck => 4,
        };
        let rules = flavour.rules();
        let n = units.len();
        let stages = units
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (&units, &width))| Stage {
                units,
                width,
                out: width * expansion,
                // slim/Keras v2 stride 2 in stages 1..n-1 (last unit), others in 2..n (first unit).
                stride: match rules.stride_unit {
                    StrideUnit::Last => usize::from(i + 1 < n) + 1,
                    StrideUnit::First => usize::from(i > 0) + 1,
                },
            })
            .collect();
        Arch {
            flavour,
            rules,
            unit,
            in_channels: 3,
            stem_width,
            stages,
            classes,
        }
    }

    /// Stride of unit `u` of stage `s`.
    pub fn unit_stride(&self, s: usize, u: usize) -> usize {
        let stage = &self.stages[s];
        let strided = match self.rules.stride_unit {
            StrideUnit::First => u == 0,
            StrideUnit::Last => u + 1 == stage.units,
        };
        if strided { stage.stride } else { 1 }
    }

    /// Input channels of unit `u` of stage `s`.
    pub fn unit_in_channels(&self, s: usize, u: usize) -> usize {
        match (s, u) {
            (0, 0) => self.stem_width,
            (_, 0) => self.stages[s - 1].out,
            _ => self.stages[s].out,
        }
    }

    /// Whether unit `u` of stage `s` has a projection shortcut.
    pub fn has_projection(&self, s: usize, u: usize) -> bool {
        match self.rules.shortcut {
            ShortcutRule::FirstUnitOfStage => u == 0,
            ShortcutRule::WhenShapeChanges => {
                self.unit_stride(s, u) != 1 || self.unit_in_channels(s, u) != self.stages[s].out
            }
        }
    }

    /// Depth as in the model names: 2 (stem + classifier) + convs per unit x units.
    pub fn depth(&self) -> usize {
        let per_unit = match self.unit {
            UnitKind::Basic => 2,
            UnitKind::Bottleneck => 3,
        };
        2 + per_unit * self.stages.iter().map(|s| s.units).sum::<usize>()
    }

    /// A preset by its framework name, e.g. `resnet_v2_152`, `ResNet50V2`, `resnetv2_50`,
    /// `resnet50`, `ResNet50`.
    pub fn preset(name: &str) -> Result<Arch> {
        // Exact first: Keras' `ResNet50` and torchvision's `resnet50` differ only in case.
        PRESETS
            .iter()
            .find(|p| p.name == name)
            .or_else(|| PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name)))
            .map(|p| p.arch())
            .ok_or_else(|| {
                Error::UnknownModel(
                    name.to_string(),
                    PRESETS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
    }
}

/// Units per stage of the paper's table (plus TF-slim's 200).
pub fn standard_units(depth: usize) -> Option<(UnitKind, [usize; 4])> {
    Some(match depth {
        18 => (UnitKind::Basic, [2, 2, 2, 2]),
        34 => (UnitKind::Basic, [3, 4, 6, 3]),
        50 => (UnitKind::Bottleneck, [3, 4, 6, 3]),
        101 => (UnitKind::Bottleneck, [3, 4, 23, 3]),
        152 => (UnitKind::Bottleneck, [3, 8, 36, 3]),
        200 => (UnitKind::Bottleneck, [3, 24, 36, 3]),
        _ => return None,
    })
}

/// Inner channels of the four stages of the standard (ImageNet) ResNets.
pub const STANDARD_WIDTHS: [usize; 4] = [64, 128, 256, 512];

/// A named preset: a flavour at a standard depth with ImageNet widths and classes.
pub struct Preset {
    /// The preset's name (`resnet_v2_152`, `ResNet50V2`, …).
    pub name: &'static str,
    /// Its flavour.
    pub flavour: Flavour,
    /// Its depth (50, 101, …).
    pub depth: usize,
}

impl Preset {
    /// The preset's architecture.
    pub fn arch(&self) -> Arch {
        let (unit, units) = standard_units(self.depth).expect("presets use standard depths");
        Arch::new(
            self.flavour,
            unit,
            &units,
            &STANDARD_WIDTHS,
            64,
            self.flavour.default_classes(),
        )
    }
}

const fn preset(name: &'static str, flavour: Flavour, depth: usize) -> Preset {
    Preset {
        name,
        flavour,
        depth,
    }
}

/// Every named preset.
pub const PRESETS: &[Preset] = &[
    preset("resnet_v2_50", Flavour::SlimV2, 50),
    preset("resnet_v2_101", Flavour::SlimV2, 101),
    preset("resnet_v2_152", Flavour::SlimV2, 152),
    preset("resnet_v2_200", Flavour::SlimV2, 200),
    preset("ResNet50V2", Flavour::KerasV2, 50),
    preset("ResNet101V2", Flavour::KerasV2, 101),
    preset("ResNet152V2", Flavour::KerasV2, 152),
    preset("resnetv2_18", Flavour::TimmV2, 18),
    preset("resnetv2_34", Flavour::TimmV2, 34),
    preset("resnetv2_50", Flavour::TimmV2, 50),
    preset("resnetv2_101", Flavour::TimmV2, 101),
    preset("resnetv2_152", Flavour::TimmV2, 152),
    preset("resnet18", Flavour::Torchvision, 18),
    preset("resnet34", Flavour::Torchvision, 34),
    preset("resnet50", Flavour::Torchvision, 50),
    preset("resnet101", Flavour::Torchvision, 101),
    preset("resnet152", Flavour::Torchvision, 152),
    preset("ResNet50", Flavour::KerasV1, 50),
    preset("ResNet101", Flavour::KerasV1, 101),
    preset("ResNet152", Flavour::KerasV1, 152),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slim_strides_sit_in_the_last_unit_of_stages_one_to_three() {
        let a = Arch::preset("resnet_v2_50").unwrap();
        assert_eq!(a.unit_stride(0, 2), 2);
        assert_eq!(a.unit_stride(0, 0), 1);
        assert_eq!(a.unit_stride(3, 2), 1);
        assert!(a.has_projection(0, 0) && !a.has_projection(0, 2));
        assert_eq!(a.classes, 1001);
    }

    #[test]
    fn torchvision_projections_follow_shape_changes() {
        let r18 = Arch::preset("resnet18").unwrap();
        assert!(!r18.has_projection(0, 0));
        assert!(r18.has_projection(1, 0) && !r18.has_projection(1, 1));
        let r50 = Arch::preset("resnet50").unwrap();
        assert!(r50.has_projection(0, 0));
        assert_eq!(r50.unit_stride(1, 0), 2);
    }

    #[test]
    fn keras_and_torchvision_names_differ_only_in_case() {
        assert_eq!(Arch::preset("ResNet50").unwrap().flavour, Flavour::KerasV1);
        assert_eq!(
            Arch::preset("resnet50").unwrap().flavour,
            Flavour::Torchvision
        );
        assert_eq!(
            Arch::preset("RESNET_V2_50").unwrap().flavour,
            Flavour::SlimV2
        );
    }

    #[test]
    fn depths_match_names() {
        for p in PRESETS {
            assert_eq!(p.arch().depth(), p.depth, "{}", p.name);
        }
    }
}
