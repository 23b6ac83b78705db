//! The checkpoints people download, against the frameworks that wrote them: Hugging Face
//! transformers folders (and a bare file), half-precision safetensors (F16, BF16) and ONNX
//! graphs (torch.onnx exports of torchvision/timm, mirrors of the ONNX model zoo's MXNet Gluon
//! v1/v2, a float16 conversion), plus transformers' image processor. Fixtures and their
//! generators: `tools/gen_{hf,half,onnx}_fixtures.py`, `tools/README.md`.
//!
//! Tolerance on logits and every feature map the framework saved: |Δ| ≤ 1e-5 · max(1,
//! max|reference|), as for the flavour fixtures (`tests/golden.rs`). Measured worst over all 17
//! cases: 8.0e-7 on the CPU reference, 8.5e-7 on lavapipe (each case prints its own); an
//! epsilon mix-up (~1e-4) fails.
//! Half-precision files are compared with the framework run in f32 on the same rounded
//! weights, so they get the same tolerance. Preprocessing: 1e-5 absolute, measured 0.

mod common;

use resnet_wgpu::gpu::session::{Session, SessionOptions};
use resnet_wgpu::graph::{Graph, LowerOptions, lower};
use resnet_wgpu::model::Flavour;
use resnet_wgpu::model::arch::{Family, StrideConv, UnitKind};
use resnet_wgpu::model::flavour::hf_preprocessor_config;
use resnet_wgpu::model::load::{LoadOptions, Loaded, load};
use resnet_wgpu::preprocess::{Alpha, decode_image_with, load_image_with};
use resnet_wgpu::tensor_file::{Tensor, f32_data, parse, read_file, read_tensor};
use resnet_wgpu::{Error, Model};
use safetensors::Dtype;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Logits and maps, relative to max(1, max |reference|) (measured worst 8.5e-7).
const TOL: f64 = 1e-5;
/// Normalised preprocessing values (measured 0).
const PRE_TOL: f64 = 1e-5;

fn fixtures(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(sub)
}

fn manifest(sub: &str) -> Vec<Value> {
    let path = fixtures(sub).join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (see tools/README.md)", path.display()));
    serde_json::from_str::<Value>(&text)
        .expect("manifest is JSON")
        .as_array()
        .expect("a list")
        .clone()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as usize)
        .collect()
}

/// A loaded case with its reference tensors.
struct Case {
    name: String,
    loaded: Loaded,
    graph: Graph,
    input: Tensor,
    logits: Tensor,
    /// `(our feature name, NCHW reference)`.
    maps: Vec<(String, Tensor)>,
}

/// Which of our feature maps a format's generator saves from its framework.
#[derive(Clone, Copy)]
enum Saved {
    /// Every map we compute (the half-precision cases run the flavour's framework).
    All,
    /// transformers' hidden states: from the embedder's output (`feat/stem_pool`) on.
    HiddenStates,
    /// The four stage outputs (what an ONNX graph names as intermediate values).
    Stages,
}

impl Saved {
    fn has(self, feature: &str) -> bool {
        match self {
            Saved::All => true,
            Saved::HiddenStates => feature != "feat/stem_conv" && feature != "feat/post_norm",
            Saved::Stages => feature.starts_with("feat/stage"),
        }
    }
}

/// Loads `weights`, lowers it at the io file's size and reads every reference tensor. The io
/// file's `feat/*` names are ours; they must be exactly the maps of ours that `saved` says
/// the framework saves, so that a map lost from a fixture (or from our graph) fails.
fn case(name: &str, weights: &Path, io: &Path, saved: Saved) -> Case {
    let loaded = load(weights, &LoadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let input = read_tensor(io, "input").unwrap();
    let [_, _, h, w] = input.shape[..] else {
        panic!("{name}: input is not 4-D")
    };
    let bytes = read_file(io).unwrap();
    let st = parse(io, &bytes).unwrap();
    let mut names: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| n.starts_with("feat/"))
        .map(str::to_string)
        .collect();
    names.sort();
    let maps = names
        .into_iter()
        .map(|n| {
            let t = read_tensor(io, &n).unwrap();
            (n, t)
        })
        .collect::<Vec<_>>();
    let net = &loaded.network;
    let graph = lower(
        &net.arch,
        &net.params,
        h,
        w,
        &LowerOptions { features: true },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut ours: Vec<&str> = graph
        .features
        .iter()
        .map(|(f, _)| f.as_str())
        .filter(|f| saved.has(f))
        .collect();
    ours.sort();
    let theirs: Vec<&str> = maps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(theirs, ours, "{name}: the reference's maps against ours");
    Case {
        name: name.to_string(),
        loaded,
        graph,
        input,
        logits: read_tensor(io, "logits").unwrap(),
        maps,
    }
}

/// Our logits and maps for a case, from a backend.
type Outputs = (Vec<f32>, Vec<(String, Vec<f32>)>);

fn cpu_run(c: &Case) -> Outputs {
    common::cpu_logits_and_maps(&c.graph, &c.input.data, &c.input.shape)
}

fn gpu_run(ctx: &resnet_wgpu::gpu::GpuContext, c: &Case) -> Outputs {
    let n = c.input.shape[0];
    let session = Session::with_options(ctx, c.graph.clone(), n, &SessionOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let out = session.run_nchw(&c.input.data, n).unwrap();
    (
        out.logits,
        out.features.into_iter().map(|f| (f.name, f.data)).collect(),
    )
}

/// Compares logits and every reference map; returns the worst relative error and the number
/// of tensors compared.
fn check(c: &Case, (logits, maps): &Outputs, what: &str) -> (f64, usize) {
    let mut worst = common::assert_close(
        logits,
        &c.logits.data,
        TOL,
        &format!("{}: {what} logits", c.name),
    );
    for (name, want) in &c.maps {
        let got = &maps
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{}: {what} produced no {name}", c.name))
            .1;
        let e = common::assert_close(got, &want.data, TOL, &format!("{}: {what} {name}", c.name));
        worst = worst.max(e);
    }
    eprintln!(
        "{:<36} {what}: worst {worst:.2e} over logits + {} maps",
        c.name,
        c.maps.len()
    );
    (worst, 1 + c.maps.len())
}

// ---------------------------------------------------------------------------------------------
// Hugging Face transformers

fn hf_cases() -> Vec<(Value, Case)> {
    let dir = fixtures("hf");
    let cases: Vec<(Value, Case)> = manifest("hf")
        .into_iter()
        .map(|m| {
            let name = m["case"].as_str().unwrap().to_string();
            let c = case(
                &name,
                &dir.join(m["path"].as_str().unwrap()),
                &dir.join(m["io"].as_str().unwrap()),
                Saved::HiddenStates,
            );
            (m, c)
        })
        .collect();
    assert_eq!(cases.len(), 5, "committed transformers cases");
    cases
}

#[test]
fn transformers_checkpoints_load_with_their_config_and_match() {
    let mut compared = 0;
    for (m, c) in hf_cases() {
        let arch = &c.loaded.network.arch;
        assert_eq!(arch.flavour, Flavour::Hf, "{}", c.name);
        let unit = match m["layer_type"].as_str().unwrap() {
            "basic" => UnitKind::Basic,
            _ => UnitKind::Bottleneck,
        };
        assert_eq!(arch.unit, unit, "{}", c.name);
        assert_eq!(
            arch.stages.iter().map(|s| s.units).collect::<Vec<_>>(),
            usizes(&m["depths"]),
            "{}",
            c.name
        );
        assert_eq!(
            arch.stages.iter().map(|s| s.out).collect::<Vec<_>>(),
            usizes(&m["hidden_sizes"]),
            "{}",
            c.name
        );
        assert_eq!(
            arch.stem_width,
            m["embedding_size"].as_u64().unwrap() as usize
        );
        assert_eq!(arch.classes, m["num_labels"].as_u64().unwrap() as usize);
        let has_config = m["has_config"].as_bool().unwrap();
        let dib = m["downsample_in_bottleneck"].as_bool().unwrap();
        let dfs = m["downsample_in_first_stage"].as_bool().unwrap();
        assert_eq!(
            arch.rules.stride_conv,
            if dib {
                StrideConv::Reduce1x1
            } else {
                StrideConv::Spatial3x3
            },
            "{}",
            c.name
        );
        assert_eq!(arch.stages[0].stride, if dfs { 2 } else { 1 }, "{}", c.name);
        // Labels: id2label when there is a config, none (ImageNet's by count) without.
        match (&c.loaded.labels, has_config) {
            (Some(l), true) => assert_eq!(l.len(), arch.classes, "{}", c.name),
            (None, false) => {
                assert!(
                    c.loaded.notes.iter().any(|n| n.contains("no config.json")),
                    "{}: {:?}",
                    c.name,
                    c.loaded.notes
                );
            }
            (l, _) => panic!("{}: labels {l:?} with has_config {has_config}", c.name),
        }
        // hf_resnet18: stem, stage maps and the pooled features; all are compared.
        assert_eq!(c.maps.len(), 6, "{}: reference maps", c.name);
        compared += check(&c, &cpu_run(&c), "cpu").1;
    }
    assert_eq!(compared, 5 * 7);
}

#[test]
fn transformers_labels_and_preprocessing_come_from_the_folder() {
    let dir = fixtures("hf");
    let model = Model::load(dir.join("hf_resnet18_64x64")).unwrap();
    let digits = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    assert_eq!(model.labels.as_deref(), Some(&digits.map(String::from)[..]));
    let labels = model.default_labels();
    assert_eq!((labels.len(), labels.get(3)), (10, "three"));
    // microsoft/resnet-50's processor, as the folder's preprocessor_config.json says.
    assert_eq!(model.preprocess(), Flavour::Hf.preprocess());
    assert_eq!(model.preprocess().output_size(), (224, 224));
    // The dfs case has LABEL_0..LABEL_4 (transformers' default names).
    let m = Model::load(dir.join("hf_resnet26_dfs_45x37")).unwrap();
    assert_eq!(m.labels.unwrap()[4], "LABEL_4");
    // The bare file: unnamed classes, ImageNet labels by count, and two notes.
    let bare = Model::load(dir.join("hf_resnet50_noconfig.safetensors")).unwrap();
    assert_eq!(bare.labels, None);
    assert_eq!(bare.default_labels().get(0), "tench");
    assert_eq!(bare.notes.len(), 2, "{:?}", bare.notes);
    assert!(bare.notes[1].contains("preprocessor_config.json"));
    // The folder's model.safetensors given directly finds the config next to it.
    let inner = Model::load(dir.join("hf_resnet50_dib_64x64/model.safetensors")).unwrap();
    assert_eq!(inner.network.arch.rules.stride_conv, StrideConv::Reduce1x1);
    assert_eq!(inner.labels.unwrap()[6], "frog");
}

/// A scratch folder per test.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("resnet-wgpu-formats-{}-{tag}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_config_that_contradicts_the_weights_is_an_error_naming_it() {
    let src = fixtures("hf/hf_resnet18_64x64");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let try_config = |tag: &str, edit: &dyn Fn(&mut Value)| -> String {
        let d = scratch(tag);
        std::fs::copy(src.join("model.safetensors"), d.join("model.safetensors")).unwrap();
        let mut c = config.clone();
        edit(&mut c);
        std::fs::write(d.join("config.json"), c.to_string()).unwrap();
        let e = load(&d, &LoadOptions::default()).unwrap_err();
        std::fs::remove_dir_all(&d).ok();
        assert!(matches!(e, Error::Config { .. }), "{tag}: {e:?}");
        e.to_string()
    };
    let e = try_config("depths", &|c| c["depths"] = serde_json::json!([2, 2, 3, 2]));
    assert!(
        e.contains("config.json") && e.contains("`depths` is [2, 2, 3, 2]"),
        "{e}"
    );
    let e = try_config("labels", &|c| {
        c["id2label"].as_object_mut().unwrap().remove("9");
    });
    assert!(
        e.contains("`id2label` has 9 labels but the classifier has 10"),
        "{e}"
    );
    let e = try_config("type", &|c| c["model_type"] = "convnext".into());
    assert!(e.contains("`convnext` model"), "{e}");
    let e = try_config("kind", &|c| c["layer_type"] = "bottleneck".into());
    assert!(e.contains("`layer_type` is bottleneck"), "{e}");
    let e = try_config("act", &|c| c["hidden_act"] = "gelu".into());
    assert!(e.contains("gelu"), "{e}");

    // Not JSON at all.
    let d = scratch("notjson");
    std::fs::copy(src.join("model.safetensors"), d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("config.json"), "{ depths: ").unwrap();
    let e = load(&d, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("not valid JSON"), "{e}");
    // A processor config that is not the ConvNeXT one.
    std::fs::copy(src.join("config.json"), d.join("config.json")).unwrap();
    std::fs::write(
        d.join("preprocessor_config.json"),
        r#"{"image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224}}"#,
    )
    .unwrap();
    let e = load(&d, &LoadOptions::default()).unwrap_err().to_string();
    assert!(
        e.contains("ViTImageProcessor") && e.contains("preprocessor_config.json"),
        "{e}"
    );
    // A folder without weights says what it has.
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("pytorch_model.bin"), b"pickle").unwrap();
    let e = load(&d, &LoadOptions::default()).unwrap_err().to_string();
    assert!(
        e.contains("without a model.safetensors")
            && e.contains("pytorch_model.bin")
            && e.contains("safetensors.torch.save_file"),
        "{e}"
    );
    std::fs::remove_dir_all(&d).ok();
}

// ---------------------------------------------------------------------------------------------
// Half precision

fn half_cases() -> Vec<(Value, Case)> {
    let dir = fixtures("half");
    let cases: Vec<(Value, Case)> = manifest("half")
        .into_iter()
        .map(|m| {
            let name = m["case"].as_str().unwrap().to_string();
            let weights = dir.join(m["weights"].as_str().unwrap());
            // Every float tensor of the file really is in the half format.
            let bytes = read_file(&weights).unwrap();
            let st = parse(&weights, &bytes).unwrap();
            let want = match m["dtype"].as_str().unwrap() {
                "F16" => Dtype::F16,
                _ => Dtype::BF16,
            };
            let halves = st
                .tensors()
                .iter()
                .filter(|(_, v)| v.dtype() == want)
                .count();
            let others = st
                .tensors()
                .iter()
                .filter(|(_, v)| v.dtype() != want && v.dtype() != Dtype::I64)
                .count();
            assert!(
                halves > 20 && others == 0,
                "{name}: {halves} {want:?}, {others} others"
            );
            let c = case(
                &name,
                &weights,
                &dir.join(m["io"].as_str().unwrap()),
                Saved::All,
            );
            (m, c)
        })
        .collect();
    assert_eq!(cases.len(), 4, "committed half-precision cases");
    cases
}

#[test]
fn half_precision_checkpoints_are_widened_and_match() {
    let mut compared = 0;
    for (m, c) in half_cases() {
        let f: Flavour = m["flavour"].as_str().unwrap().parse().unwrap();
        assert_eq!(c.loaded.network.arch.flavour, f, "{}", c.name);
        assert!(!c.maps.is_empty(), "{}", c.name);
        compared += check(&c, &cpu_run(&c), "cpu").1;
    }
    // Logits and every map: 7 of a torchvision net, 8 of a timm v2 net (its post-norm too),
    // each in F16 and BF16.
    assert_eq!(compared, 2 * (1 + 7) + 2 * (1 + 8), "tensors compared");
}

/// Writes a checkpoint whose every float tensor is `dtype` bits from `widen`'s inverse, with
/// one value replaced by `bad` bits.
fn half_file_with(tag: &str, dtype: Dtype, bad: u16, at: (&str, usize)) -> PathBuf {
    let src = fixtures(match dtype {
        Dtype::F16 => "half/timm_v2_small_32x32_f16.weights.safetensors",
        _ => "half/timm_v2_small_32x32_bf16.weights.safetensors",
    });
    let bytes = read_file(&src).unwrap();
    let st = parse(&src, &bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let t = tensors.iter_mut().find(|t| t.0 == at.0).expect("tensor");
    t.3[2 * at.1..2 * at.1 + 2].copy_from_slice(&bad.to_le_bytes());
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.as_str(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let path = scratch(tag).join("w.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

#[test]
fn nan_and_inf_bit_patterns_in_half_files_are_refused_by_name_and_index() {
    // f16 NaN (0x7e00) and bf16 -Inf (0xff80), each placed at a known index.
    for (dtype, bits, what) in [
        (Dtype::F16, 0x7e00u16, "NaN"),
        (Dtype::BF16, 0xff80, "-inf"),
    ] {
        let name = "stages.1.blocks.0.conv2.weight";
        let path = half_file_with(&format!("{dtype:?}"), dtype, bits, (name, 17));
        let e = load(&path, &LoadOptions::default()).unwrap_err();
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
        match &e {
            Error::NonFiniteWeight {
                name: n,
                index,
                value,
            } => {
                assert_eq!((n.as_str(), *index), (name, 17), "{dtype:?}");
                assert_eq!(format!("{value}"), what, "{dtype:?}");
            }
            other => panic!("{dtype:?}: expected NonFiniteWeight, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ONNX

fn onnx_cases() -> Vec<(Value, Case)> {
    let dir = fixtures("onnx");
    let cases: Vec<(Value, Case)> = manifest("onnx")
        .into_iter()
        .filter(|m| !m["io"].is_null())
        .map(|m| {
            let name = m["case"].as_str().unwrap().to_string();
            let c = case(
                &name,
                &dir.join(m["file"].as_str().unwrap()),
                &dir.join(m["io"].as_str().unwrap()),
                Saved::Stages,
            );
            (m, c)
        })
        .collect();
    assert_eq!(cases.len(), 8, "committed ONNX cases with references");
    cases
}

#[test]
fn onnx_resnets_are_read_off_the_graph_and_match_onnxruntime() {
    let mut compared = 0;
    for (m, c) in onnx_cases() {
        let arch = &c.loaded.network.arch;
        let family = match m["family"].as_str().unwrap() {
            "v1" => Family::PostActivation,
            _ => Family::PreActivation,
        };
        assert_eq!(arch.family(), family, "{}", c.name);
        let unit = match m["unit"].as_str().unwrap() {
            "basic" => UnitKind::Basic,
            _ => UnitKind::Bottleneck,
        };
        assert_eq!(arch.unit, unit, "{}", c.name);
        assert_eq!(
            arch.stages.iter().map(|s| s.units).collect::<Vec<_>>(),
            usizes(&m["units"]),
            "{}",
            c.name
        );
        assert_eq!(
            arch.stages.iter().map(|s| s.width).collect::<Vec<_>>(),
            usizes(&m["widths"]),
            "{}",
            c.name
        );
        assert_eq!(arch.stem_width, m["stem_width"].as_u64().unwrap() as usize);
        assert_eq!(arch.classes, m["classes"].as_u64().unwrap() as usize);
        if unit == UnitKind::Bottleneck {
            let want = match m["stride_in"].as_str().unwrap() {
                "1x1" => StrideConv::Reduce1x1,
                _ => StrideConv::Spatial3x3,
            };
            assert_eq!(arch.rules.stride_conv, want, "{}", c.name);
        }
        // MXNet Gluon's v2 normalises its input with a batch norm and keeps a v1 stem.
        let gluon_v2 = c.name.starts_with("zoo_v2");
        assert_eq!(
            c.loaded.network.params.input_norm.is_some(),
            gluon_v2,
            "{}",
            c.name
        );
        assert_eq!(
            arch.rules.stem_norm,
            family == Family::PostActivation || gluon_v2
        );
        assert!(
            c.loaded.format.starts_with("ONNX opset"),
            "{}",
            c.loaded.format
        );
        assert_eq!(c.maps.len(), 4, "{}: stage maps", c.name);
        compared += check(&c, &cpu_run(&c), "cpu").1;
    }
    assert_eq!(compared, 8 * 5);
}

#[test]
fn onnx_preprocessing_follows_the_producer() {
    let dir = fixtures("onnx");
    let timm = Model::load(dir.join("timm_resnetv2_opset17.onnx")).unwrap();
    assert_eq!(timm.preprocess(), Flavour::TimmV2.preprocess());
    let zoo = Model::load(dir.join("zoo_v2_basic_opset12.onnx")).unwrap();
    assert_eq!(zoo.preprocess(), Flavour::Torchvision.preprocess());
    assert!(zoo.notes[0].contains("ONNX files do not say how to preprocess"));
}

#[test]
fn a_graph_outside_the_resnet_pattern_is_named_node_by_node() {
    let dir = fixtures("onnx");
    let e = load(&dir.join("not_a_resnet.onnx"), &LoadOptions::default()).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, Error::Onnx { .. }), "{e:?}");
    assert!(
        s.contains("`sigmoid` (Sigmoid)")
            && s.contains("expected")
            && s.contains("not_a_resnet.onnx"),
        "{s}"
    );
    // Truncated and empty files, and a safetensors file named .onnx.
    let bytes = read_file(&dir.join("zoo_v1_basic_opset7.onnx")).unwrap();
    let d = scratch("onnx-bad");
    for (tag, data) in [
        ("truncated", &bytes[..bytes.len() / 2]),
        ("empty", &bytes[..0]),
        (
            "safetensors",
            &read_file(&fixtures(
                "half/timm_v2_small_32x32_f16.weights.safetensors",
            ))
            .unwrap()[..],
        ),
    ] {
        let p = d.join(format!("{tag}.onnx"));
        std::fs::write(&p, data).unwrap();
        let e = load(&p, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Onnx { .. }), "{tag}: {e:?}");
        assert!(e.to_string().contains(&format!("{tag}.onnx")), "{tag}: {e}");
    }
    // An ONNX file without the extension is still recognised.
    let p = d.join("model");
    std::fs::write(&p, &bytes).unwrap();
    let m = load(&p, &LoadOptions::default()).unwrap();
    assert!(m.format.starts_with("ONNX"));
    std::fs::remove_dir_all(&d).ok();
}

// ---------------------------------------------------------------------------------------------
// Every format on the GPU

#[test]
fn the_gpu_matches_every_format() {
    let ctx = common::gpu();
    eprintln!("adapter: {}", ctx.summary());
    let mut n = 0;
    for (_, c) in hf_cases()
        .into_iter()
        .chain(half_cases())
        .chain(onnx_cases())
    {
        check(&c, &gpu_run(&ctx, &c), "gpu");
        n += 1;
    }
    assert_eq!(n, 5 + 4 + 8);
}

// ---------------------------------------------------------------------------------------------
// transformers' image processor

#[test]
fn transformers_image_processor_matches_exactly() {
    let pre = fixtures("preprocess");
    let rules: Value =
        serde_json::from_str(&std::fs::read_to_string(pre.join("hf_rules.json")).unwrap()).unwrap();
    let path = pre.join("hf_expected.safetensors");
    let bytes = read_file(&path).unwrap();
    let st = parse(&path, &bytes).unwrap();
    let d = scratch("hf-rules");
    let mut compared = 0;
    let mut worst = 0f64;
    for (name, view) in st.tensors() {
        let Some((image, rule)) = name.rsplit_once('/') else {
            panic!("{name}")
        };
        if view.dtype() != Dtype::F32 {
            continue;
        }
        let config = &rules["rules"][rule]["config"];
        assert!(config.is_object(), "{rule}: no config in hf_rules.json");
        let cfg_path = d.join(format!("{rule}.json"));
        std::fs::write(&cfg_path, config.to_string()).unwrap();
        let p = hf_preprocessor_config(&cfg_path).unwrap_or_else(|e| panic!("{rule}: {e}"));
        // Pillow's decode where the fixture has it (JPEG decoders differ by a few levels, see
        // tests/preprocess.rs); our own otherwise (PNG decoding is exact).
        let img = match st.tensor(&format!("{image}/decoded_rgb")) {
            Ok(v) if p.alpha == Alpha::Drop => image::RgbImage::from_raw(
                v.shape()[1] as u32,
                v.shape()[0] as u32,
                v.data().to_vec(),
            )
            .unwrap(),
            _ => load_image_with(&pre.join(image), p.alpha).unwrap(),
        };
        if p.alpha == Alpha::OverWhite {
            // The composite itself, pixel for pixel.
            let want = st.tensor(&format!("{image}/white_composite_rgb")).unwrap();
            assert_eq!(
                img.as_raw().as_slice(),
                want.data(),
                "{image}: white composite"
            );
        }
        let got = p.apply(&img).unwrap();
        let want = f32_data(&name, &view).unwrap();
        assert_eq!(view.shape()[1..], [p.output_size().0, p.output_size().1]);
        worst = worst.max(common::assert_close_abs(&got, &want, PRE_TOL, &name));
        compared += 1;
    }
    std::fs::remove_dir_all(&d).ok();
    eprintln!("{compared} transformers tensors, worst |diff| {worst:.2e}");
    assert_eq!(compared, 16, "tensors in hf_expected.safetensors");
}

#[test]
fn transformers_crop_pads_an_image_smaller_than_the_crop_with_the_larger_half_first() {
    // A 2x2 white image, shorter side kept at 2 (resize 2), crop 5: transformers pads
    // ceil(3 / 2) = 2 before (torchvision: 1).
    let cfg = scratch("hf-pad").join("p.json");
    std::fs::write(
        &cfg,
        r#"{"size": {"shortest_edge": 5}, "crop_pct": 2.5, "resample": 2,
            "do_normalize": false}"#,
    )
    .unwrap();
    let p = hf_preprocessor_config(&cfg).unwrap();
    let img = image::RgbImage::from_pixel(2, 2, image::Rgb([255, 255, 255]));
    let x = p.apply(&img).unwrap();
    let row: Vec<f32> = x[2 * 5..3 * 5].to_vec();
    assert_eq!(row, [0.0, 0.0, 1.0, 1.0, 0.0]);
    assert_eq!(&x[0..5], &[0.0; 5]);
    std::fs::remove_dir_all(cfg.parent().unwrap()).ok();
    // RGBA decoded both ways: dropped alpha keeps the colour, white compositing brightens.
    let png = read_file(&fixtures("preprocess/rgba_120x90.png")).unwrap();
    let dropped = decode_image_with(&png, "rgba", Alpha::Drop).unwrap();
    let white = decode_image_with(&png, "rgba", Alpha::OverWhite).unwrap();
    assert_ne!(dropped, white);
}

/// Seeded corruptions of ONNX files (flipped bytes, truncations, spliced runs): each load is
/// an error or a network that lowers; never a panic. `RESNET_FUZZ_ITERATIONS` per file.
#[test]
fn corrupt_onnx_files_never_panic() {
    let iterations: usize = std::env::var("RESNET_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut rng = move |n: usize| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % n.max(1) as u64) as usize
    };
    let (mut loaded, mut refused) = (0, 0);
    // Refusals by mutation (flips, truncation, copied run) and by error kind.
    let mut refusals: std::collections::BTreeMap<(&str, String), usize> = Default::default();
    for file in [
        "zoo_v1_basic_opset7.onnx",
        "tv_resnet18ish_opset13.onnx",
        "zoo_v2_basic_opset12.onnx",
    ] {
        let good = read_file(&fixtures("onnx").join(file)).unwrap();
        for _ in 0..iterations {
            let mut b = good.clone();
            let mutation = rng(3);
            match mutation {
                0 => {
                    for _ in 0..1 + rng(8) {
                        let i = rng(b.len());
                        b[i] ^= 1 << rng(8);
                    }
                }
                1 => b.truncate(rng(b.len())),
                _ => {
                    let (from, to, len) = (rng(b.len()), rng(b.len()), rng(64));
                    let run: Vec<u8> = b[from..(from + len).min(b.len())].to_vec();
                    let end = (to + run.len()).min(b.len());
                    b[to..end].copy_from_slice(&run[..end - to]);
                }
            }
            match resnet_wgpu::model::load::load_bytes(
                &b,
                Path::new("fuzzed.onnx"),
                &LoadOptions::default(),
            ) {
                Ok(l) => {
                    let net = &l.network;
                    if let Err(e) = lower(&net.arch, &net.params, 32, 32, &LowerOptions::default())
                    {
                        assert!(matches!(e, Error::Input(_)), "{e:?}");
                    }
                    loaded += 1;
                }
                Err(e) => {
                    // A bad file is the file's fault: an ONNX error naming it, or a network
                    // that is not a ResNet we know (shapes, names, values); never an I/O,
                    // GPU or internal error.
                    let kind = match &e {
                        Error::Onnx { path, problem } => {
                            assert_eq!(path, Path::new("fuzzed.onnx"), "{e}");
                            assert!(!problem.is_empty(), "{e:?}");
                            "onnx"
                        }
                        Error::WeightMismatch { .. } => "weights",
                        Error::NonFiniteWeight { .. } => "non-finite",
                        Error::Input(m) if !m.is_empty() => "input",
                        other => panic!("a corrupt file gave {other:?}"),
                    };
                    let mutation = ["flips", "truncated", "copied run"][mutation];
                    *refusals.entry((mutation, kind.to_string())).or_default() += 1;
                    refused += 1;
                }
            }
        }
    }
    eprintln!("{loaded} corrupted ONNX files still loaded, {refused} refused: {refusals:?}");
    // Each mutation is refused some of the time (a truncated protobuf most of all), and some
    // files survive (a flipped bit in a weight is still a valid file).
    for mutation in ["flips", "truncated", "copied run"] {
        assert!(
            refusals.keys().any(|(m, _)| *m == mutation),
            "no {mutation} file refused: {refusals:?}"
        );
    }
    assert!(loaded > 0, "no corrupted file loaded");
}
