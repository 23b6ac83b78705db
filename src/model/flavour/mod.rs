//! The flavours of weights people hold, one file each: what a framework calls every tensor and
//! how it lays it out, which names give it away, the rules its network computes by (stride
//! placement, shortcuts, stem pool, eps, biases) and its evaluation preprocessing.
//!
//! Everything else loops over [`Flavour::ALL`] and asks the flavour's `Spec`: detection,
//! loading, export, preprocessing. Adding a flavour is a new file here implementing `Spec`,
//! a variant of [`Flavour`] with its line in `Flavour::spec`, and fixtures.

mod hf;
mod keras;
mod slim_v2;
mod timm_v2;
mod torchvision;

use crate::error::{Error, Result};
use crate::model::arch::Arch;
use crate::model::load::skeleton::Slot;
use crate::model::params::ConvWeights;
pub use crate::model::rules::{
    Biases, Family, Flavour, Rules, ShortcutRule, StemPoolPadding, StrideConv, StrideUnit,
};
use crate::preprocess::Preprocess;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// How a conv-like tensor's axes are ordered in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisOrder {
    /// PyTorch conv `[out, in, kh, kw]` (timm's classifier is a 1x1 one).
    Oihw,
    /// TF/Keras conv `[kh, kw, in, out]` (slim's classifier is a 1x1 one), = our canonical form.
    Hwio,
    /// PyTorch `Linear` `[out, in]`.
    Linear,
    /// Keras `Dense` kernel `[in, out]`.
    Dense,
}

impl AxisOrder {
    /// The tensor shape of a `kh x kw`, `cin` to `cout` conv in this layout.
    pub fn shape(self, kh: usize, kw: usize, cin: usize, cout: usize) -> Vec<usize> {
        match self {
            AxisOrder::Oihw => vec![cout, cin, kh, kw],
            AxisOrder::Hwio => vec![kh, kw, cin, cout],
            AxisOrder::Linear => vec![cout, cin],
            AxisOrder::Dense => vec![cin, cout],
        }
    }

    /// `(cin, cout)` of a tensor of this layout, if its rank fits.
    pub fn cin_cout(self, shape: &[usize]) -> Option<(usize, usize)> {
        match (self, shape) {
            (AxisOrder::Oihw, &[o, i, _, _]) | (AxisOrder::Linear, &[o, i]) => Some((i, o)),
            (AxisOrder::Hwio, &[_, _, i, o]) | (AxisOrder::Dense, &[i, o]) => Some((i, o)),
            _ => None,
        }
    }

    /// Canonical HWIO weights from file data already checked to have [`AxisOrder::shape`].
    pub fn to_hwio(
        self,
        data: Vec<f32>,
        kh: usize,
        kw: usize,
        cin: usize,
        cout: usize,
    ) -> ConvWeights {
        match self {
            // A 1x1 OIHW conv is a Linear weight with two trailing unit axes.
            AxisOrder::Oihw | AxisOrder::Linear => ConvWeights::from_oihw(&data, cout, cin, kh, kw),
            AxisOrder::Hwio | AxisOrder::Dense => ConvWeights {
                kh,
                kw,
                cin,
                cout,
                weight: data,
                bias: None,
            },
        }
    }

    /// The inverse of [`AxisOrder::to_hwio`] (for export).
    pub fn hwio_to_file(self, w: &ConvWeights) -> (Vec<usize>, Vec<f32>) {
        let shape = self.shape(w.kh, w.kw, w.cin, w.cout);
        let data = match self {
            AxisOrder::Hwio | AxisOrder::Dense => w.weight.clone(),
            AxisOrder::Oihw | AxisOrder::Linear => {
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

/// One flavour, all in one place. Names here are *canonical*: what [`Spec::canonical`] makes of
/// a file's names (no `:0` suffix, no Keras model prefix, no slim scope).
///
/// Slots a flavour never has (a torchvision preact, a slim stem BN) still get a plausible name,
/// so that exporting an odd [`Params`](crate::model::Params) cannot fail.
pub(crate) trait Spec: Sync {
    /// What `--flavour` takes and messages print.
    fn name(&self) -> &'static str;
    fn rules(&self) -> Rules;
    /// Class count of the released (ImageNet) checkpoints.
    fn default_classes(&self) -> usize {
        1000
    }
    /// The framework's own evaluation preprocessing of its released checkpoints.
    fn preprocess(&self) -> Preprocess;

    /// Whether `name` (as the file has it) is typical of this flavour; detection counts these.
    fn is_marker(&self, name: &str) -> bool;
    /// Whether the file's names as a whole rule this flavour out although its markers are
    /// there (Keras v1 and v2 share their names; v2 is the one with pre-activation BNs).
    fn ruled_out_by(&self, _names: &[&str]) -> bool {
        false
    }

    /// The layout of a conv slot's weight.
    fn layout(&self, slot: Slot) -> AxisOrder;
    /// `(weight, bias)` names of a conv slot.
    fn conv(&self, slot: Slot) -> (String, String);
    /// `[gamma, beta, mean, var]` names of a BN slot.
    fn bn(&self, slot: Slot) -> [String; 4];
    /// `(stage, unit)`, 0-based, of a canonical name inside a residual unit.
    fn unit_index(&self, name: &str) -> Option<(usize, usize)>;

    /// The scope every name of this file sits under (slim), `""` for none.
    fn scope(&self, _names: &[&str]) -> String {
        String::new()
    }
    /// The canonical name of a file's name, or `None` for a name that cannot belong to this
    /// flavour's network (outside the scope).
    fn canonical(&self, _scope: &str, name: &str) -> Option<String> {
        Some(strip_output_index(name).to_string())
    }
    /// The scope export writes names under, for a net of this depth.
    fn export_scope(&self, _depth: usize) -> Option<String> {
        None
    }

    /// Reads the files a checkpoint of this flavour comes with (transformers' `config.json`
    /// next to `weights`), adjusts the arch read off the names to them (checking that they
    /// agree) and returns what else they say.
    fn companion(&self, _weights: &Path, _arch: &mut Arch) -> Result<Companion> {
        Ok(Companion::default())
    }
}

/// What the files next to a checkpoint say about using it.
#[derive(Clone, Debug, Default)]
pub struct Companion {
    /// Evaluation preprocessing, if the files give one.
    pub preprocess: Option<Preprocess>,
    /// One label per class, if the files name them.
    pub labels: Option<Vec<String>>,
    /// What was assumed for lack of a file, for the user to see.
    pub notes: Vec<String>,
}

impl Flavour {
    /// Every flavour.
    pub const ALL: [Flavour; 6] = [
        Flavour::SlimV2,
        Flavour::KerasV2,
        Flavour::TimmV2,
        Flavour::Torchvision,
        Flavour::KerasV1,
        Flavour::Hf,
    ];

    /// The registration: each flavour's spec.
    pub(crate) fn spec(self) -> &'static dyn Spec {
        match self {
            Flavour::SlimV2 => &slim_v2::SlimV2,
            Flavour::KerasV2 => &keras::Keras { v2: true },
            Flavour::TimmV2 => &timm_v2::TimmV2,
            Flavour::Torchvision => &torchvision::Torchvision,
            Flavour::KerasV1 => &keras::Keras { v2: false },
            Flavour::Hf => &hf::Hf,
        }
    }

    /// The flavour's name (`slim-v2`, `torchvision`, …).
    pub fn name(self) -> &'static str {
        self.spec().name()
    }

    /// The rules this flavour's checkpoints compute by (a transformers config may change them).
    pub fn rules(self) -> Rules {
        self.spec().rules()
    }

    /// Post- or pre-activation.
    pub fn family(self) -> Family {
        self.rules().family
    }

    /// The batch norms' epsilon.
    pub fn bn_eps(self) -> f32 {
        self.rules().bn_eps
    }

    /// Which convs carry a bias in the checkpoint.
    pub fn biases(self) -> Biases {
        self.rules().biases
    }

    /// Default (ImageNet) class count of the released checkpoints.
    pub fn default_classes(self) -> usize {
        self.spec().default_classes()
    }

    /// The framework's evaluation preprocessing of its released checkpoints.
    pub fn preprocess(self) -> Preprocess {
        self.spec().preprocess()
    }

    /// Every flavour's name, for messages.
    pub fn names() -> String {
        Flavour::ALL.map(Flavour::name).join(", ")
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Flavour {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.to_ascii_lowercase().replace('_', "-");
        Flavour::ALL
            .into_iter()
            .find(|f| f.name() == norm)
            .ok_or_else(|| {
                Error::UnknownFlavour(format!("`{s}` is not one of {}", Flavour::names()))
            })
    }
}

/// The preprocessing a transformers `preprocessor_config.json` describes (the ConvNeXT image
/// processor that transformers' ResNets use), as `classify` applies it to an `hf` checkpoint.
pub fn hf_preprocessor_config(path: &Path) -> Result<Preprocess> {
    hf::processor_file(path)
}

/// Drops a TF variable's `:0` output suffix.
pub(crate) fn strip_output_index(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    }
}

/// Parses leading decimal digits.
pub(crate) fn number(s: &str) -> Option<(usize, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, &s[end..]))
}

/// PyTorch `state_dict` naming shared by torchvision, timm and transformers: `module.field`.
pub(crate) mod torch_names {
    pub(crate) fn conv(base: &str) -> (String, String) {
        (format!("{base}.weight"), format!("{base}.bias"))
    }
    pub(crate) fn bn(base: &str) -> [String; 4] {
        ["weight", "bias", "running_mean", "running_var"].map(|f| format!("{base}.{f}"))
    }
}

/// Which flavour a set of names is written in: the flavour with the most marker names wins
/// (among those the names do not rule out).
pub(crate) fn detect(names: &[&str]) -> std::result::Result<Flavour, String> {
    let score: Vec<(Flavour, usize)> = Flavour::ALL
        .iter()
        .map(|&f| {
            let spec = f.spec();
            let n = if spec.ruled_out_by(names) {
                0
            } else {
                names.iter().filter(|n| spec.is_marker(n)).count()
            };
            (f, n)
        })
        .collect();
    let best = score.iter().map(|s| s.1).max().unwrap_or(0);
    let winners: Vec<Flavour> = score.iter().filter(|s| s.1 == best).map(|s| s.0).collect();
    if best > 0 && winners.len() == 1 {
        return Ok(winners[0]);
    }
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
    Err(if names.is_empty() {
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
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(" and ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            detect(&[
                "resnet.embedder.embedder.convolution.weight",
                "classifier.1.weight"
            ]),
            Ok(Flavour::Hf)
        );
        let err = detect(&["foo", "bar"]).unwrap_err();
        assert!(err.contains("`bar`, `foo`"), "{err}");
        assert!(detect(&[]).unwrap_err().contains("no tensors"));
        let err = detect(&["conv1.weight", "stem.conv.weight"]).unwrap_err();
        assert!(err.contains("timm-v2 and torchvision"), "{err}");
    }

    #[test]
    fn names_parse_back() {
        for f in Flavour::ALL {
            assert_eq!(f.name().parse::<Flavour>().unwrap(), f);
        }
        let err = "caffe".parse::<Flavour>().unwrap_err().to_string();
        assert!(err.contains("hf") && err.contains("slim-v2"), "{err}");
    }

    #[test]
    fn oihw_round_trips_through_hwio() {
        let data: Vec<f32> = (0..2 * 3 * 3 * 5).map(|v| v as f32).collect();
        let w = AxisOrder::Oihw.to_hwio(data.clone(), 3, 5, 3, 2);
        assert_eq!(w, ConvWeights::from_oihw(&data, 2, 3, 3, 5));
        assert_eq!(AxisOrder::Oihw.hwio_to_file(&w), (vec![2, 3, 3, 5], data));
    }
}
