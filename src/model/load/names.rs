//! Each flavour's tensor names and layouts, as one table from [`Slot`]s to names. Loading and
//! export both read this table, so they cannot disagree about a name.
//!
//! Names here are *canonical*: no `:0` suffix, no Keras model prefix, no slim scope. The
//! loader maps a file's names to canonical ones ([`Canonicalizer`]); export adds the slim scope.
//!
//! slim and Keras only ship bottleneck nets. Basic units are named by the same scheme
//! (`conv1`, `conv2` and their BNs, no `conv3`) so that any [`Arch`](crate::model::Arch)
//! round-trips in any flavour; no framework writes such files.

use super::skeleton::{Part, Slot};
use crate::model::arch::Flavour;
use crate::model::params::ConvWeights;

/// How a conv-like tensor's axes are ordered in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// PyTorch conv `[out, in, kh, kw]` (timm's classifier is a 1x1 one).
    Oihw,
    /// TF/Keras conv `[kh, kw, in, out]` (slim's classifier is a 1x1 one), = our canonical form.
    Hwio,
    /// PyTorch `Linear` `[out, in]`.
    Linear,
    /// Keras `Dense` kernel `[in, out]`.
    Dense,
}

impl Layout {
    pub(crate) fn shape(self, kh: usize, kw: usize, cin: usize, cout: usize) -> Vec<usize> {
        match self {
            Layout::Oihw => vec![cout, cin, kh, kw],
            Layout::Hwio => vec![kh, kw, cin, cout],
            Layout::Linear => vec![cout, cin],
            Layout::Dense => vec![cin, cout],
        }
    }

    /// `(cin, cout)` of a tensor of this layout, if its rank fits.
    pub(crate) fn cin_cout(self, shape: &[usize]) -> Option<(usize, usize)> {
        match (self, shape) {
            (Layout::Oihw, &[o, i, _, _]) | (Layout::Linear, &[o, i]) => Some((i, o)),
            (Layout::Hwio, &[_, _, i, o]) | (Layout::Dense, &[i, o]) => Some((i, o)),
            _ => None,
        }
    }

    /// Canonical HWIO weights from file data already checked to have [`Layout::shape`].
    pub(crate) fn to_hwio(
        self,
        data: Vec<f32>,
        kh: usize,
        kw: usize,
        cin: usize,
        cout: usize,
    ) -> ConvWeights {
        match self {
            // A 1x1 OIHW conv is a Linear weight with two trailing unit axes.
            Layout::Oihw | Layout::Linear => ConvWeights::from_oihw(&data, cout, cin, kh, kw),
            Layout::Hwio | Layout::Dense => ConvWeights {
                kh,
                kw,
                cin,
                cout,
                weight: data,
                bias: None,
            },
        }
    }

    /// The inverse of [`Layout::to_hwio`] (for export).
    pub(crate) fn hwio_to_file(self, w: &ConvWeights) -> (Vec<usize>, Vec<f32>) {
        let shape = self.shape(w.kh, w.kw, w.cin, w.cout);
        let data = match self {
            Layout::Hwio | Layout::Dense => w.weight.clone(),
            Layout::Oihw | Layout::Linear => {
                let mut oihw = vec![0.0; w.weight.len()];
                for y in 0..w.kh {
                    for x in 0..w.kw {
                        for i in 0..w.cin {
                            let row = ((y * w.kw + x) * w.cin + i) * w.cout;
                            for o in 0..w.cout {
                                oihw[((o * w.cin + i) * w.kh + y) * w.kw + x] = w.weight[row + o];
                            }
                        }
                    }
                }
                oihw
            }
        };
        (shape, data)
    }
}

fn is_torch(f: Flavour) -> bool {
    matches!(f, Flavour::Torchvision | Flavour::TimmV2)
}

fn is_keras(f: Flavour) -> bool {
    matches!(f, Flavour::KerasV1 | Flavour::KerasV2)
}

/// The layout of a conv slot's weight.
pub(crate) fn layout(f: Flavour, slot: Slot) -> Layout {
    match (f, slot) {
        (Flavour::Torchvision, Slot::Classifier) => Layout::Linear,
        (Flavour::KerasV1 | Flavour::KerasV2, Slot::Classifier) => Layout::Dense,
        _ if is_torch(f) => Layout::Oihw,
        _ => Layout::Hwio,
    }
}

/// The module/layer name of a slot. Slots a flavour never has (a torchvision preact, a slim
/// stem BN) still get a plausible name so that exporting an odd `Params` cannot fail.
fn base(f: Flavour, slot: Slot) -> String {
    let (stage, unit, part) = match slot {
        Slot::Unit { stage, unit, part } => (stage, unit, part),
        _ => {
            let (tv, timm, keras, slim) = match slot {
                Slot::Stem => ("conv1", "stem.conv", "conv1_conv", "conv1"),
                Slot::StemBn => ("bn1", "stem.norm", "conv1_bn", "conv1/BatchNorm"),
                Slot::PostNorm => ("norm", "norm", "post_bn", "postnorm"),
                _ => ("fc", "head.fc", "predictions", "logits"),
            };
            return match f {
                Flavour::Torchvision => tv,
                Flavour::TimmV2 => timm,
                Flavour::KerasV1 | Flavour::KerasV2 => keras,
                Flavour::SlimV2 => slim,
            }
            .to_string();
        }
    };
    match f {
        Flavour::Torchvision => {
            let p = match part {
                Part::Preact => "preact".to_string(),
                Part::Conv(k) => format!("conv{k}"),
                Part::Bn(k) => format!("bn{k}"),
                Part::Shortcut => "downsample.0".to_string(),
                Part::ShortcutBn => "downsample.1".to_string(),
            };
            format!("layer{}.{unit}.{p}", stage + 1)
        }
        Flavour::TimmV2 => {
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
        Flavour::KerasV1 | Flavour::KerasV2 => {
            let p = match part {
                Part::Preact => "preact_bn".to_string(),
                Part::Conv(k) => format!("{k}_conv"),
                Part::Bn(k) => format!("{k}_bn"),
                Part::Shortcut => "0_conv".to_string(),
                Part::ShortcutBn => "0_bn".to_string(),
            };
            format!("conv{}_block{}_{p}", stage + 2, unit + 1)
        }
        Flavour::SlimV2 => {
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

fn join(f: Flavour, base: &str, field: &str) -> String {
    if is_torch(f) {
        format!("{base}.{field}")
    } else {
        format!("{base}/{field}")
    }
}

/// `(weight, bias)` names of a conv slot.
pub(crate) fn conv(f: Flavour, slot: Slot) -> (String, String) {
    let b = base(f, slot);
    let (w, bias) = match f {
        _ if is_torch(f) => ("weight", "bias"),
        _ if is_keras(f) => ("kernel", "bias"),
        _ => ("weights", "biases"),
    };
    (join(f, &b, w), join(f, &b, bias))
}

/// `[gamma, beta, mean, var]` names of a BN slot.
pub(crate) fn bn(f: Flavour, slot: Slot) -> [String; 4] {
    let b = base(f, slot);
    let fields = if is_torch(f) {
        ["weight", "bias", "running_mean", "running_var"]
    } else {
        ["gamma", "beta", "moving_mean", "moving_variance"]
    };
    fields.map(|field| join(f, &b, field))
}

/// The scope slim names carry on export (what `resnet_v2.resnet_v2_50` etc. use).
pub(crate) fn slim_scope(depth: usize) -> String {
    format!("resnet_v2_{depth}")
}

/// Parses leading decimal digits.
fn number(s: &str) -> Option<(usize, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, &s[end..]))
}

/// `(stage, unit)`, 0-based, of a canonical name inside a residual unit.
pub(crate) fn unit_index(f: Flavour, name: &str) -> Option<(usize, usize)> {
    match f {
        Flavour::Torchvision => {
            let (s, rest) = number(name.strip_prefix("layer")?)?;
            let (u, rest) = number(rest.strip_prefix('.')?)?;
            rest.starts_with('.').then_some((s.checked_sub(1)?, u))
        }
        Flavour::TimmV2 => {
            let (s, rest) = number(name.strip_prefix("stages.")?)?;
            let (u, rest) = number(rest.strip_prefix(".blocks.")?)?;
            rest.starts_with('.').then_some((s, u))
        }
        Flavour::KerasV1 | Flavour::KerasV2 => {
            let (s, rest) = number(name.strip_prefix("conv")?)?;
            let (u, rest) = number(rest.strip_prefix("_block")?)?;
            rest.starts_with('_')
                .then_some((s.checked_sub(2)?, u.checked_sub(1)?))
        }
        Flavour::SlimV2 => {
            let (s, rest) = number(name.strip_prefix("block")?)?;
            let (u, rest) = number(rest.strip_prefix("/unit_")?)?;
            rest.starts_with("/bottleneck_v2/")
                .then_some((s.checked_sub(1)?, u.checked_sub(1)?))
        }
    }
}

/// Drops a TF variable's `:0` output suffix.
fn strip_output_index(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    }
}

/// The slim scope of a name (everything before `blockN/unit_M/bottleneck_v2/`), `""` for none.
fn slim_unit_scope(name: &str) -> Option<&str> {
    let mut start = 0;
    loop {
        let rest = &name[start..];
        if unit_index(Flavour::SlimV2, rest).is_some() {
            return Some(name[..start].trim_end_matches('/'));
        }
        start += rest.find('/')? + 1;
    }
}

/// Maps a file's names to canonical names for `f`.
pub(crate) struct Canonicalizer {
    flavour: Flavour,
    /// slim only: the scope every name must sit under (`""` for none).
    scope: String,
}

impl Canonicalizer {
    /// Picks the slim scope as the one most unit names agree on, so stray variables from a
    /// second model in the same file cannot move it.
    pub(crate) fn new(flavour: Flavour, names: &[&str]) -> Canonicalizer {
        let mut scope = String::new();
        if flavour == Flavour::SlimV2 {
            let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
            for n in names {
                if let Some(s) = slim_unit_scope(strip_output_index(n)) {
                    *counts.entry(s).or_default() += 1;
                }
            }
            if let Some((s, _)) = counts
                .iter()
                .max_by_key(|&(s, c)| (*c, std::cmp::Reverse(*s)))
            {
                scope = s.to_string();
            } else if let Some(n) = names
                .iter()
                .map(|n| strip_output_index(n))
                .find(|n| n.ends_with("/postnorm/gamma") || n.ends_with("/logits/weights"))
            {
                scope = n.rsplitn(3, '/').nth(2).unwrap_or("").to_string();
            }
        }
        Canonicalizer { flavour, scope }
    }

    /// The canonical name, or `None` for a name that cannot belong to this flavour's network
    /// (outside the slim scope).
    pub(crate) fn canonical(&self, name: &str) -> Option<String> {
        let name = strip_output_index(name);
        if is_keras(self.flavour) {
            // Keras names are `layer/variable`, possibly below a model name.
            let mut parts = name.rsplitn(3, '/');
            let var = parts.next()?;
            return Some(match parts.next() {
                Some(layer) => format!("{layer}/{var}"),
                None => var.to_string(),
            });
        }
        if self.flavour == Flavour::SlimV2 && !self.scope.is_empty() {
            return name
                .strip_prefix(self.scope.as_str())?
                .strip_prefix('/')
                .map(str::to_string);
        }
        Some(name.to_string())
    }

    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }
}

/// Names that say nothing about the weights and are skipped silently (torch's BN step
/// counters, TF's global step).
pub(crate) fn is_ignored(name: &str) -> bool {
    let name = strip_output_index(name);
    name.ends_with("num_batches_tracked") || name == "global_step"
}

/// Whether `name` is typical of torchvision, timm, Keras, slim (in that order).
fn markers(name: &str) -> [bool; 4] {
    let name = strip_output_index(name);
    let torchvision = unit_index(Flavour::Torchvision, name).is_some()
        || matches!(name, "conv1.weight" | "bn1.weight" | "fc.weight");
    let timm = unit_index(Flavour::TimmV2, name).is_some()
        || name.starts_with("stem.conv.")
        || name.starts_with("head.fc.");
    let layer = name.rsplit('/').nth(1).unwrap_or("");
    let keras = layer == "conv1_conv"
        || layer == "post_bn"
        || unit_index(Flavour::KerasV1, &format!("{layer}/")).is_some();
    let slim = slim_unit_scope(name).is_some()
        || name.ends_with("postnorm/gamma")
        || name.ends_with("logits/biases");
    [torchvision, timm, keras, slim]
}

/// Which flavour a set of names is written in: the family with the most marker names wins;
/// Keras is v2 as soon as any pre-activation BN is present.
pub(crate) fn detect(names: &[&str]) -> std::result::Result<Flavour, String> {
    let mut score = [0usize; 4];
    for n in names {
        for (s, m) in score.iter_mut().zip(markers(n)) {
            *s += usize::from(m);
        }
    }
    let best = *score.iter().max().unwrap_or(&0);
    let winners: Vec<usize> = (0..4).filter(|&i| score[i] == best).collect();
    let candidates = ["torchvision", "timm-v2", "keras-v1/v2", "slim-v2"];
    if best == 0 || winners.len() > 1 {
        let mut sample: Vec<&str> = names.to_vec();
        sample.sort_unstable();
        let shown = sample
            .iter()
            .take(8)
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let more = if sample.len() > 8 {
            format!(" and {} more", sample.len() - 8)
        } else {
            String::new()
        };
        let what = if names.is_empty() {
            "the file holds no tensors".to_string()
        } else if best == 0 {
            format!(
                "none of the {} tensor names looks like a known layout: {shown}{more}",
                names.len()
            )
        } else {
            format!(
                "the names fit {} equally well: {shown}{more}",
                winners
                    .iter()
                    .map(|&i| candidates[i])
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        };
        return Err(what);
    }
    Ok(match winners[0] {
        0 => Flavour::Torchvision,
        1 => Flavour::TimmV2,
        2 => {
            let v2 = names.iter().any(|n| {
                let n = strip_output_index(n);
                n.contains("_preact_bn/") || n.contains("post_bn/")
            });
            if v2 {
                Flavour::KerasV2
            } else {
                Flavour::KerasV1
            }
        }
        _ => Flavour::SlimV2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_indices_parse_per_flavour() {
        assert_eq!(
            unit_index(Flavour::Torchvision, "layer2.10.conv1.weight"),
            Some((1, 10))
        );
        assert_eq!(
            unit_index(Flavour::Torchvision, "layer0.1.conv1.weight"),
            None
        );
        assert_eq!(
            unit_index(Flavour::TimmV2, "stages.3.blocks.0.norm1.weight"),
            Some((3, 0))
        );
        assert_eq!(
            unit_index(Flavour::KerasV2, "conv5_block3_preact_bn/gamma"),
            Some((3, 2))
        );
        assert_eq!(unit_index(Flavour::KerasV2, "conv1_conv/kernel"), None);
        assert_eq!(
            unit_index(Flavour::SlimV2, "block4/unit_3/bottleneck_v2/conv1/weights"),
            Some((3, 2))
        );
    }

    #[test]
    fn keras_names_lose_prefix_and_output_index() {
        let c = Canonicalizer::new(Flavour::KerasV2, &[]);
        assert_eq!(
            c.canonical("resnet50v2/conv2_block1_0_conv/kernel:0")
                .as_deref(),
            Some("conv2_block1_0_conv/kernel")
        );
        assert_eq!(
            c.canonical("conv1_conv/bias").as_deref(),
            Some("conv1_conv/bias")
        );
    }

    #[test]
    fn slim_scope_is_found_under_any_prefix() {
        let names = [
            "tower/resnet_v2_50/conv1/weights:0",
            "tower/resnet_v2_50/block1/unit_1/bottleneck_v2/conv1/weights:0",
            "other/thing",
        ];
        let c = Canonicalizer::new(Flavour::SlimV2, &names);
        assert_eq!(c.scope(), "tower/resnet_v2_50");
        assert_eq!(c.canonical(names[0]).as_deref(), Some("conv1/weights"));
        assert_eq!(c.canonical(names[2]), None);
        let bare = ["block1/unit_1/bottleneck_v2/conv1/weights", "conv1/weights"];
        let c = Canonicalizer::new(Flavour::SlimV2, &bare);
        assert_eq!(c.scope(), "");
        assert_eq!(c.canonical(bare[1]).as_deref(), Some("conv1/weights"));
    }

    #[test]
    fn detection_needs_a_clear_winner() {
        assert_eq!(
            detect(&["conv1_conv/kernel:0", "conv2_block1_1_conv/kernel:0"]),
            Ok(Flavour::KerasV1)
        );
        assert_eq!(
            detect(&["m/conv1_conv/kernel", "m/conv2_block1_preact_bn/gamma"]),
            Ok(Flavour::KerasV2)
        );
        let err = detect(&["foo", "bar"]).unwrap_err();
        assert!(err.contains("`bar`, `foo`"), "{err}");
        assert!(detect(&[]).unwrap_err().contains("no tensors"));
    }

    #[test]
    fn oihw_round_trips_through_hwio() {
        let data: Vec<f32> = (0..2 * 3 * 3 * 5).map(|v| v as f32).collect();
        let w = Layout::Oihw.to_hwio(data.clone(), 3, 5, 3, 2);
        assert_eq!(w, ConvWeights::from_oihw(&data, 2, 3, 3, 5));
        assert_eq!(Layout::Oihw.hwio_to_file(&w), (vec![2, 3, 3, 5], data));
    }
}
