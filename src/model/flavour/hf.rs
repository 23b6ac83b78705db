//! Hugging Face transformers' `ResNetForImageClassification` (e.g. `microsoft/resnet-50`):
//! `resnet.embedder.embedder.convolution.weight`,
//! `resnet.encoder.stages.{i}.layers.{j}.layer.{k}.{convolution,normalization}.*`,
//! `resnet.encoder.stages.{i}.layers.{j}.shortcut.*`, `classifier.1.{weight,bias}`.
//!
//! The names do not say everything: a hub snapshot's `config.json` holds
//! `downsample_in_first_stage`, `downsample_in_bottleneck` (stride on the first 1x1 instead of
//! the 3x3) and the labels (`id2label`), and `preprocessor_config.json` the evaluation
//! preprocessing (`ConvNextImageProcessor`). Both are read here ([`Spec::companion`]); without
//! them transformers' defaults apply and the loader says so.

use super::{AxisOrder, Companion, Rules, Spec, StrideConv, number, torch_names};
use crate::error::{Error, Result};
use crate::model::arch::{Arch, UnitKind};
use crate::model::load::skeleton::{Part, Slot};
use crate::preprocess::{Alpha, Filter, Preprocess, Resize};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub(crate) struct Hf;

const PREFIX: &str = "resnet.encoder.stages.";

/// transformers' `IMAGENET_DEFAULT_MEAN/STD`, which microsoft/resnet-50's config spells out.
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// `ConvNextImageProcessor`'s own defaults (`IMAGENET_STANDARD_*`), used for keys the file
/// leaves out.
const STANDARD: [f32; 3] = [0.5; 3];

impl Spec for Hf {
    fn name(&self) -> &'static str {
        "hf"
    }

    /// v1.5 as torchvision; `config.json` may move the stride (see [`Spec::companion`]).
    fn rules(&self) -> Rules {
        Rules::TORCH_V1
    }

    /// microsoft/resnet-50's `preprocessor_config.json`: shortest edge 224, crop_pct 0.875
    /// (resize to 256), bicubic, ImageNet mean/std.
    fn preprocess(&self) -> Preprocess {
        convnext(
            224,
            0.875,
            Filter::Bicubic,
            1.0 / 255.0,
            IMAGENET_MEAN,
            IMAGENET_STD,
        )
    }

    fn is_marker(&self, name: &str) -> bool {
        name.starts_with("resnet.embedder.")
            || name.starts_with(PREFIX)
            || name.starts_with("classifier.1.")
    }

    fn layout(&self, slot: Slot) -> AxisOrder {
        match slot {
            Slot::Classifier => AxisOrder::Linear,
            _ => AxisOrder::Oihw,
        }
    }

    fn conv(&self, slot: Slot) -> (String, String) {
        match slot {
            Slot::Classifier => torch_names::conv("classifier.1"),
            _ => torch_names::conv(&format!("{}.convolution", base(slot))),
        }
    }

    fn bn(&self, slot: Slot) -> [String; 4] {
        torch_names::bn(&format!("{}.normalization", base(slot)))
    }

    fn unit_index(&self, name: &str) -> Option<(usize, usize)> {
        let (s, rest) = number(name.strip_prefix(PREFIX)?)?;
        let (u, rest) = number(rest.strip_prefix(".layers.")?)?;
        rest.starts_with('.').then_some((s, u))
    }

    fn companion(&self, weights: &Path, arch: &mut Arch) -> Result<Companion> {
        let dir = weights.parent().unwrap_or(Path::new("."));
        let mut out = Companion::default();
        let config = dir.join("config.json");
        match read_json(&config)? {
            Some(v) => out.labels = apply_config(&config, &v, arch)?,
            None => out.notes.push(format!(
                "no config.json next to {}: assumed transformers' defaults \
                 (downsample_in_first_stage false, downsample_in_bottleneck false, stride on the \
                 3x3) and unnamed classes",
                weights.display()
            )),
        }
        let pre = dir.join("preprocessor_config.json");
        match read_json(&pre)? {
            Some(v) => out.preprocess = Some(processor(&pre, &v)?),
            None => out.notes.push(format!(
                "no preprocessor_config.json next to {}: classify uses microsoft/resnet-50's \
                 (shortest edge 224 from 256, bicubic, ImageNet mean/std)",
                weights.display()
            )),
        }
        Ok(out)
    }
}

fn base(slot: Slot) -> String {
    match slot {
        Slot::Stem | Slot::StemBn => "resnet.embedder.embedder".into(),
        // transformers' ResNet has neither; plausible names for export only.
        Slot::PostNorm => "resnet.norm".into(),
        Slot::Classifier => "classifier.1".into(),
        Slot::Unit { stage, unit, part } => {
            let p = match part {
                Part::Preact => "preact".to_string(),
                Part::Conv(k) | Part::Bn(k) => format!("layer.{}", k - 1),
                Part::Shortcut | Part::ShortcutBn => "shortcut".to_string(),
            };
            format!("{PREFIX}{stage}.layers.{unit}.{p}")
        }
    }
}

/// transformers' ConvNeXT image processor, Pillow backend (what `use_fast=False` gives and what
/// the fast one approximates): below 384 the shorter side goes to `int(shortest_edge /
/// crop_pct)` and the centre `shortest_edge` square is cropped at floor offsets; from 384 on
/// the image is warped to a square without cropping.
fn convnext(
    shortest_edge: usize,
    crop_pct: f64,
    filter: Filter,
    scale: f32,
    mean: [f32; 3],
    std: [f32; 3],
) -> Preprocess {
    let resize = if shortest_edge < 384 {
        Resize::HfShorterThenCrop {
            resize: (shortest_edge as f64 / crop_pct) as usize,
            crop: shortest_edge,
            filter,
        }
    } else {
        Resize::Squash {
            height: shortest_edge,
            width: shortest_edge,
            filter,
        }
    };
    Preprocess {
        resize,
        scale,
        mean,
        std,
        bgr: false,
        alpha: Alpha::Drop,
    }
}

/// A JSON file, or `None` if there is none.
fn read_json(path: &Path) -> Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // The browser has no file system: a checkpoint picked there has nothing next to it.
        Err(e) if cfg!(target_arch = "wasm32") && e.kind() == std::io::ErrorKind::Unsupported => {
            return Ok(None);
        }
        Err(source) => {
            return Err(Error::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| config_error(path, format!("not valid JSON ({e})")))
}

fn config_error(path: &Path, what: String) -> Error {
    Error::Config {
        path: PathBuf::from(path),
        problem: what,
    }
}

fn usizes(v: &Value) -> Option<Vec<usize>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_u64().map(|n| n as usize))
        .collect()
}

/// Checks `config.json` against the arch read off the weights, applies the two stride
/// switches and returns the labels.
fn apply_config(path: &Path, v: &Value, arch: &mut Arch) -> Result<Option<Vec<String>>> {
    let mut problems = Vec::new();
    if let Some(t) = v.get("model_type").and_then(Value::as_str)
        && t != "resnet"
    {
        return Err(config_error(
            path,
            format!("it describes a `{t}` model, not transformers' `resnet`"),
        ));
    }
    let units: Vec<usize> = arch.stages.iter().map(|s| s.units).collect();
    let outs: Vec<usize> = arch.stages.iter().map(|s| s.out).collect();
    let mut check = |key: &str, want: Option<Vec<usize>>, have: &[usize]| match want {
        Some(w) if w != have => {
            problems.push(format!("`{key}` is {w:?} but the weights have {have:?}"))
        }
        Some(_) => {}
        None if v.get(key).is_some() => problems.push(format!("`{key}` is not a list of integers")),
        None => {}
    };
    check("depths", v.get("depths").and_then(usizes), &units);
    check(
        "hidden_sizes",
        v.get("hidden_sizes").and_then(usizes),
        &outs,
    );
    let one = |key: &str| v.get(key).and_then(Value::as_u64).map(|n| vec![n as usize]);
    check("embedding_size", one("embedding_size"), &[arch.stem_width]);
    check("num_channels", one("num_channels"), &[arch.in_channels]);
    if let Some(t) = v.get("layer_type").and_then(Value::as_str) {
        let kind = match t {
            "basic" => Some(UnitKind::Basic),
            "bottleneck" => Some(UnitKind::Bottleneck),
            _ => None,
        };
        match kind {
            None => problems.push(format!(
                "`layer_type` `{t}` is neither basic nor bottleneck"
            )),
            Some(k) if k != arch.unit => problems.push(format!(
                "`layer_type` is {t} but the weights have {:?} layers",
                arch.unit
            )),
            Some(_) => {}
        }
    }
    if let Some(a) = v.get("hidden_act").and_then(Value::as_str)
        && a != "relu"
    {
        problems.push(format!(
            "`hidden_act` is `{a}`; only relu ResNets are supported"
        ));
    }
    let flag = |key: &str| v.get(key).and_then(Value::as_bool).unwrap_or(false);
    if flag("downsample_in_first_stage")
        && let Some(s) = arch.stages.first_mut()
    {
        s.stride = 2;
    }
    if flag("downsample_in_bottleneck") {
        arch.rules.stride_conv = StrideConv::Reduce1x1;
    }
    let labels = match v.get("id2label") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            let mut labels = vec![None; arch.classes];
            for (k, name) in map {
                match (k.parse::<usize>(), name.as_str()) {
                    (Ok(i), Some(name)) if i < arch.classes => labels[i] = Some(name.to_string()),
                    _ => problems.push(format!(
                        "`id2label` entry {k:?}: {name} is not an index below {} with a name",
                        arch.classes
                    )),
                }
            }
            if map.len() != arch.classes {
                problems.push(format!(
                    "`id2label` has {} labels but the classifier has {} classes",
                    map.len(),
                    arch.classes
                ));
            }
            labels.into_iter().collect::<Option<Vec<String>>>()
        }
        Some(_) => {
            problems.push("`id2label` is not an object".into());
            None
        }
    };
    if !problems.is_empty() {
        return Err(config_error(path, problems.join("; ")));
    }
    Ok(labels)
}

/// Reads a `preprocessor_config.json` (see [`processor`]).
pub(crate) fn processor_file(path: &Path) -> Result<Preprocess> {
    match read_json(path)? {
        Some(v) => processor(path, &v),
        None => Err(Error::Io {
            path: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        }),
    }
}

/// `preprocessor_config.json` of a ConvNeXT image processor as a [`Preprocess`].
fn processor(path: &Path, v: &Value) -> Result<Preprocess> {
    let fail = |what: String| {
        config_error(
            path,
            format!(
                "{what}; classify implements transformers' ConvNextImageProcessor (what \
                 microsoft/resnet-50 ships): fix the file, or move it away to use that one's \
                 defaults"
            ),
        )
    };
    let kind = v
        .get("image_processor_type")
        .or_else(|| v.get("feature_extractor_type"))
        .and_then(Value::as_str)
        .unwrap_or("ConvNextImageProcessor");
    if !kind.starts_with("ConvNext") {
        return Err(fail(format!("the processor is `{kind}`")));
    }
    let flag = |key: &str, default: bool| v.get(key).and_then(Value::as_bool).unwrap_or(default);
    if !flag("do_resize", true) {
        return Err(fail("`do_resize` is false".into()));
    }
    let shortest_edge = match v.get("size") {
        Some(Value::Object(m)) => m.get("shortest_edge").and_then(Value::as_u64),
        Some(n) => n.as_u64(),
        None => Some(384),
    }
    .filter(|&n| n > 0)
    .ok_or_else(|| fail("`size` has no positive `shortest_edge`".into()))?
        as usize;
    let crop_pct = match v.get("crop_pct") {
        None | Some(Value::Null) => 224.0 / 256.0,
        Some(x) => x
            .as_f64()
            .filter(|c| *c > 0.0 && c.is_finite())
            .ok_or_else(|| fail(format!("`crop_pct` {x} is not a positive number")))?,
    };
    let filter = match v.get("resample").map(|r| r.as_u64()) {
        None => Filter::Bicubic,
        Some(Some(0)) => Filter::Nearest,
        Some(Some(2)) => Filter::Bilinear,
        Some(Some(3)) => Filter::Bicubic,
        Some(r) => {
            return Err(fail(format!(
                "`resample` {} is not one of 0 (nearest), 2 (bilinear), 3 (bicubic)",
                r.map_or("?".into(), |r| r.to_string())
            )));
        }
    };
    let scale = if flag("do_rescale", true) {
        v.get("rescale_factor")
            .map(|x| x.as_f64().filter(|r| *r > 0.0 && r.is_finite()))
            .unwrap_or(Some(1.0 / 255.0))
            .ok_or_else(|| fail("`rescale_factor` is not a positive number".into()))? as f32
    } else {
        1.0
    };
    let triple = |key: &str| -> Result<[f32; 3]> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(STANDARD),
            Some(x) => {
                let list: Option<Vec<f32>> = match x {
                    Value::Array(a) => a.iter().map(|e| e.as_f64().map(|f| f as f32)).collect(),
                    n => n.as_f64().map(|f| vec![f as f32; 3]),
                };
                match list.as_deref() {
                    Some(&[a, b, c]) => Ok([a, b, c]),
                    _ => Err(fail(format!("`{key}` is not 3 numbers"))),
                }
            }
        }
    };
    let (mean, std) = if flag("do_normalize", true) {
        (triple("image_mean")?, triple("image_std")?)
    } else {
        ([0.0; 3], [1.0; 3])
    };
    if std.iter().any(|s| *s == 0.0 || !s.is_finite()) || mean.iter().any(|m| !m.is_finite()) {
        return Err(fail(format!(
            "`image_std` {std:?} / `image_mean` {mean:?} cannot normalise"
        )));
    }
    let mut p = convnext(shortest_edge, crop_pct, filter, scale, mean, std);
    if flag("do_convert_rgb", false) {
        p.alpha = Alpha::OverWhite;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_unit_indices() {
        let (w, _) = Hf.conv(Slot::unit(2, 1, Part::Conv(3)));
        assert_eq!(
            w,
            "resnet.encoder.stages.2.layers.1.layer.2.convolution.weight"
        );
        assert_eq!(Hf.unit_index(&w), Some((2, 1)));
        assert_eq!(
            Hf.bn(Slot::unit(0, 0, Part::ShortcutBn))[3],
            "resnet.encoder.stages.0.layers.0.shortcut.normalization.running_var"
        );
        assert_eq!(Hf.conv(Slot::Classifier).0, "classifier.1.weight");
        assert_eq!(
            Hf.bn(Slot::StemBn)[0],
            "resnet.embedder.embedder.normalization.weight"
        );
    }

    #[test]
    fn processor_configs() {
        let p = |s: &str| processor(Path::new("p.json"), &serde_json::from_str(s).unwrap());
        let ms = p(
            r#"{"crop_pct": 0.875, "do_normalize": true, "do_rescale": true,
            "do_resize": true, "image_mean": [0.485, 0.456, 0.406],
            "image_processor_type": "ConvNextImageProcessor", "image_std": [0.229, 0.224, 0.225],
            "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224}}"#,
        )
        .unwrap();
        assert_eq!(ms, Hf.preprocess());
        let warp = p(r#"{"size": {"shortest_edge": 384}, "resample": 2}"#).unwrap();
        assert_eq!(
            warp.resize,
            Resize::Squash {
                height: 384,
                width: 384,
                filter: Filter::Bilinear
            }
        );
        assert_eq!(warp.mean, STANDARD);
        let e = p(r#"{"resample": 1}"#).unwrap_err().to_string();
        assert!(e.contains("`resample` 1") && e.contains("p.json"), "{e}");
        let e = p(r#"{"image_processor_type": "ViTImageProcessor"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ViTImageProcessor"), "{e}");
        assert!(p(r#"{"image_std": [0.5, 0, 0.5]}"#).is_err());
        assert!(p(r#"{"image_mean": [0.5, 0.5]}"#).is_err());
        assert_eq!(
            p(r#"{"do_convert_rgb": true}"#).unwrap().alpha,
            Alpha::OverWhite
        );
    }
}
