//! TF-slim's `resnet_v2_50..200` (the reference for slim-style v2): `<scope>/conv1/weights`,
//! `<scope>/block1/unit_1/bottleneck_v2/conv1/weights`, `<scope>/logits/weights`.

use super::{
    AxisOrder, Biases, Family, Rules, ShortcutRule, Spec, StemPoolPadding, StrideConv, StrideUnit,
    number, strip_output_index,
};
use crate::model::load::skeleton::{Part, Slot};
use crate::preprocess::{Preprocess, Resize};

pub(crate) struct SlimV2;

impl Spec for SlimV2 {
    fn name(&self) -> &'static str {
        "slim-v2"
    }

    fn rules(&self) -> Rules {
        Rules {
            family: Family::PreActivation,
            stride_unit: StrideUnit::Last,
            stride_conv: StrideConv::Spatial3x3,
            stem_pool: StemPoolPadding::TfSame,
            shortcut: ShortcutRule::FirstUnitOfStage,
            stem_norm: false,
            bn_eps: 1e-5,
            biases: Biases {
                stem: true,
                inner: false,
                last: true,
                shortcut: true,
            },
        }
    }

    /// The released ImageNet checkpoints have a background class at 0.
    fn default_classes(&self) -> usize {
        1001
    }

    /// Inception eval preprocessing: central crop 87.5%, TF bilinear to 299, [-1, 1].
    fn preprocess(&self) -> Preprocess {
        Preprocess::minus_one_one(Resize::CentralCropThenResize {
            fraction: 0.875,
            size: 299,
        })
    }

    fn is_marker(&self, name: &str) -> bool {
        let name = strip_output_index(name);
        unit_scope(name).is_some()
            || name.ends_with("postnorm/gamma")
            || name.ends_with("logits/biases")
    }

    fn layout(&self, _slot: Slot) -> AxisOrder {
        AxisOrder::Hwio
    }

    fn conv(&self, slot: Slot) -> (String, String) {
        let b = base(slot);
        (format!("{b}/weights"), format!("{b}/biases"))
    }

    fn bn(&self, slot: Slot) -> [String; 4] {
        let b = base(slot);
        ["gamma", "beta", "moving_mean", "moving_variance"].map(|f| format!("{b}/{f}"))
    }

    fn unit_index(&self, name: &str) -> Option<(usize, usize)> {
        let (s, rest) = number(name.strip_prefix("block")?)?;
        let (u, rest) = number(rest.strip_prefix("/unit_")?)?;
        rest.starts_with("/bottleneck_v2/")
            .then_some((s.checked_sub(1)?, u.checked_sub(1)?))
    }

    /// The scope most unit names agree on, so that stray variables from a second model in the
    /// same file cannot move it.
    fn scope(&self, names: &[&str]) -> String {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for n in names {
            if let Some(s) = unit_scope(strip_output_index(n)) {
                *counts.entry(s).or_default() += 1;
            }
        }
        if let Some((s, _)) = counts
            .iter()
            .max_by_key(|&(s, c)| (*c, std::cmp::Reverse(*s)))
        {
            return s.to_string();
        }
        names
            .iter()
            .map(|n| strip_output_index(n))
            .find(|n| n.ends_with("/postnorm/gamma") || n.ends_with("/logits/weights"))
            .map(|n| n.rsplitn(3, '/').nth(2).unwrap_or("").to_string())
            .unwrap_or_default()
    }

    fn canonical(&self, scope: &str, name: &str) -> Option<String> {
        let name = strip_output_index(name);
        if scope.is_empty() {
            return Some(name.to_string());
        }
        name.strip_prefix(scope)?
            .strip_prefix('/')
            .map(str::to_string)
    }

    /// What `resnet_v2.resnet_v2_50` etc. use.
    fn export_scope(&self, depth: usize) -> Option<String> {
        Some(format!("resnet_v2_{depth}"))
    }
}

/// The slim scope of a name (everything before `blockN/unit_M/bottleneck_v2/`), `""` for none.
fn unit_scope(name: &str) -> Option<&str> {
    let mut start = 0;
    loop {
        let rest = &name[start..];
        if SlimV2.unit_index(rest).is_some() {
            return Some(name[..start].trim_end_matches('/'));
        }
        start += rest.find('/')? + 1;
    }
}

/// slim only ships bottleneck nets. Basic units are named by the same scheme (`conv1`,
/// `conv2` and their BNs, no `conv3`) so that any arch round-trips; no framework writes such
/// files.
fn base(slot: Slot) -> String {
    match slot {
        Slot::Stem => "conv1".into(),
        Slot::StemBn => "conv1/BatchNorm".into(),
        Slot::PostNorm => "postnorm".into(),
        Slot::Classifier => "logits".into(),
        Slot::Unit { stage, unit, part } => {
            let p = match part {
                Part::Preact => "preact".to_string(),
                Part::Conv(k) => format!("conv{k}"),
                Part::Bn(k) => format!("conv{k}/BatchNorm"),
                Part::Shortcut => "shortcut".to_string(),
                Part::ShortcutBn => "shortcut/BatchNorm".to_string(),
            };
            format!("block{}/unit_{}/bottleneck_v2/{p}", stage + 1, unit + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slim_scope_is_found_under_any_prefix() {
        let names = [
            "tower/resnet_v2_50/conv1/weights:0",
            "tower/resnet_v2_50/block1/unit_1/bottleneck_v2/conv1/weights:0",
            "other/thing",
        ];
        let scope = SlimV2.scope(&names);
        assert_eq!(scope, "tower/resnet_v2_50");
        assert_eq!(
            SlimV2.canonical(&scope, names[0]).as_deref(),
            Some("conv1/weights")
        );
        assert_eq!(SlimV2.canonical(&scope, names[2]), None);
        let bare = ["block1/unit_1/bottleneck_v2/conv1/weights", "conv1/weights"];
        let scope = SlimV2.scope(&bare);
        assert_eq!(scope, "");
        assert_eq!(
            SlimV2.canonical(&scope, bare[1]).as_deref(),
            Some("conv1/weights")
        );
        assert_eq!(
            SlimV2.unit_index("block4/unit_3/bottleneck_v2/conv1/weights"),
            Some((3, 2))
        );
    }
}
