//! The golden fixtures in a real browser: headless Chromium's WebGPU (SwiftShader on machines
//! without a GPU) runs every case of `tests/fixtures/manifest.json` through the library's async
//! API and must match the logits and feature maps the frameworks computed:
//! |Δ| ≤ [`REL_TOL`] · max(1, max|reference|) in f32, [`F16_TOL`] with f16 storage.
//! The other checkpoint formats (ONNX, F16/BF16 safetensors, transformers files) load from
//! their bytes alone, as the page loads a picked file, and match `tests/formats.rs`' references
//! (logits and every map the reference saved); every case of their three manifests is built in.
//!
//! Run by `.ci/run` (the README's "Tests" gives the command); without a WebGPU adapter every test
//! fails, saying how to get one.

#![cfg(target_arch = "wasm32")]

#[path = "../../tests/common/mod.rs"]
mod common;

use resnet_wgpu::Model;
use resnet_wgpu::gpu::session::{Session, SessionOptions};
use resnet_wgpu::gpu::{AdapterChoice, GpuContext};
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::model::Network;
use resnet_wgpu::model::load::{LoadOptions, load_network_from_bytes};
use resnet_wgpu::plan::Precision;
use resnet_wgpu::tensor_file::{f32_data, parse};
use serde_json::Value;
use std::path::Path;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// f32 storage and arithmetic, on every f32 path here (the flavour fixtures and the other
/// formats): logits and every feature map. Measured worst on SwiftShader (Chromium 156,
/// Debian 12): flavour fixtures logits 9.1e-7, maps 1.3e-6 (keras_v1_small_45x37); other
/// formats logits 5.2e-7, maps 1.1e-6 (hf_resnet18); each case logs its own. A batch-norm epsilon of 1e-4 instead of 1e-5 (about 1e-4 relative
/// drift) fails it.
const REL_TOL: f64 = 1e-5;
/// f16 storage (every activation and constant rounded to f16, f32 arithmetic): the native
/// golden test's `F16_TOL` (`tests/golden.rs`, where its measurements are).
const F16_TOL: f64 = 1e-2;

/// `(case, weights file, io file)`: the committed fixtures, built into the test module (the
/// browser has no file system).
macro_rules! case {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!(
                "../../tests/fixtures/",
                $name,
                ".weights.safetensors"
            ))
            .as_slice(),
            include_bytes!(concat!("../../tests/fixtures/", $name, ".io.safetensors")).as_slice(),
        )
    };
}

const CASES: &[(&str, &[u8], &[u8])] = &[
    case!("slim_v2_small_32x32"),
    case!("keras_v2_small_32x32"),
    case!("timm_v2_small_32x32"),
    case!("timm_v2_basic_small_32x32"),
    case!("torchvision_small_32x32"),
    case!("torchvision_basic_small_32x32"),
    case!("keras_v1_small_32x32"),
    case!("slim_v2_small_45x37"),
    case!("keras_v2_small_45x37"),
    case!("timm_v2_small_45x37"),
    case!("timm_v2_basic_small_45x37"),
    case!("torchvision_small_45x37"),
    case!("torchvision_basic_small_45x37"),
    case!("keras_v1_small_45x37"),
    case!("torchvision_18_64x64"),
    case!("timm_v2_18_64x64"),
    case!("slim_v2_50_64x64"),
    case!("keras_v2_50_64x64"),
    case!("timm_v2_50_64x64"),
    case!("torchvision_50_64x64"),
    case!("keras_v1_50_64x64"),
    case!("slim_v2_152_64x64"),
    case!("keras_v2_152_64x64"),
    case!("timm_v2_152_64x64"),
    case!("torchvision_152_64x64"),
    case!("keras_v1_152_64x64"),
    case!("slim_v2_200_64x64"),
];

const MANIFEST: &str = include_str!("../../tests/fixtures/manifest.json");

fn manifest(text: &str, what: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not a list"))
        .clone()
}

async fn context() -> GpuContext {
    GpuContext::new_async(&AdapterChoice::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nThe browser tests need Chromium with WebGPU: `apt-get install chromium \
                 chromium-driver` and the flags in web/webdriver.json (see .ci/run)"
            )
        })
}

/// Which of the reference's maps are compared.
#[derive(Clone, Copy, PartialEq)]
enum Maps {
    /// The reference saved exactly the maps we produce (the flavour fixtures).
    Exactly,
    /// Every map the reference saved is one we produce (we may produce more: the other
    /// formats' references saved the maps their framework names).
    Saved,
}

/// The worst relative errors of one forward pass.
#[derive(Clone, Copy, Default)]
struct Errors {
    logits: f64,
    maps: f64,
    compared_maps: usize,
}

/// Lowers `net` at the io file's input size, runs it with `opts` and compares the logits and
/// the maps ([`Maps`]) with the io file's at `tol`; what is beyond it (or not comparable: a
/// NaN, a missing map, a length mismatch) goes to `failures`.
#[allow(clippy::too_many_arguments)]
async fn run_and_compare(
    ctx: &GpuContext,
    name: &str,
    net: &Network,
    io: &[u8],
    opts: &SessionOptions,
    tol: f64,
    maps: Maps,
    failures: &mut Vec<String>,
) -> Errors {
    let io = parse(Path::new(name), io).unwrap_or_else(|e| panic!("{name}: {e}"));
    let tensor = |t: &str| {
        let view = io.tensor(t).unwrap_or_else(|e| panic!("{name}: {t}: {e}"));
        (view.shape().to_vec(), f32_data(t, &view).unwrap())
    };
    let (shape, input) = tensor("input");
    let [n, _, h, w] = shape[..] else {
        panic!("{name}: input is not 4-D")
    };
    let graph = lower(
        &net.arch,
        &net.params,
        h,
        w,
        &LowerOptions { features: true },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let session = Session::with_options_async(ctx, graph, n, opts)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let out = session
        .run_nchw_async(&input, n)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut errors = Errors::default();
    // The worst error so far grows; `Some(why)` when beyond `tol` or not comparable.
    let compare =
        |what: &str, got: &[f32], want: &[f32], worst: &mut f64| match common::rel_err(got, want) {
            Ok(e) => {
                *worst = worst.max(e);
                (e > tol).then(|| format!("{name}: {what} {e:.2e}"))
            }
            Err(why) => Some(format!("{name}: {what}: {why}")),
        };
    failures.extend(compare(
        "logits",
        &out.logits,
        &tensor("logits").1,
        &mut errors.logits,
    ));
    let saved: Vec<&str> = io
        .names()
        .into_iter()
        .filter(|t| t.starts_with("feat/"))
        .collect();
    if saved.is_empty() {
        failures.push(format!("{name}: the reference saved no feature map"));
    }
    if maps == Maps::Exactly && out.features.len() != saved.len() {
        failures.push(format!(
            "{name}: {} feature maps, the framework saved {}",
            out.features.len(),
            saved.len()
        ));
    }
    for map in saved {
        match out.features.iter().find(|f| f.name == map) {
            Some(f) => {
                failures.extend(compare(map, &f.data, &tensor(map).1, &mut errors.maps));
                errors.compared_maps += 1;
            }
            None => failures.push(format!("{name}: the reference has {map}, we do not")),
        }
    }
    web_sys_log(&format!(
        "{name:<56} logits {:.2e}, maps {:.2e} ({} maps)",
        errors.logits, errors.maps, errors.compared_maps
    ));
    errors
}

/// Every case the manifest lists is built in, and nothing else: a case added to the fixtures
/// cannot be silently left out here.
#[wasm_bindgen_test]
fn every_manifest_case_is_built_in() {
    let manifest = manifest(MANIFEST, "tests/fixtures/manifest.json");
    let mut listed: Vec<&str> = manifest
        .iter()
        .map(|c| c["case"].as_str().expect("case name"))
        .collect();
    let mut built: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    listed.sort_unstable();
    built.sort_unstable();
    assert_eq!(built, listed);
}

/// The flavour fixtures with `precision`, at `tol`; only the cases `pick` accepts (by their
/// manifest entry), which must be some.
async fn golden(precision: Precision, tol: f64, pick: impl Fn(&Value) -> bool) {
    let ctx = context().await;
    web_sys_log(&format!("adapter: {}", ctx.summary()));
    let opts = SessionOptions {
        precision,
        ..Default::default()
    };
    let picked: Vec<String> = manifest(MANIFEST, "manifest.json")
        .iter()
        .filter(|c| pick(c))
        .map(|c| c["case"].as_str().expect("case name").to_string())
        .collect();
    assert!(!picked.is_empty(), "no case picked");
    let mut failures = Vec::new();
    let mut worst = Errors::default();
    for name in &picked {
        let &(_, weights, io) = CASES
            .iter()
            .find(|c| c.0 == name)
            .unwrap_or_else(|| panic!("{name} is not built in"));
        let net = load_network_from_bytes(weights, Path::new(name), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let e = run_and_compare(
            &ctx,
            name,
            &net,
            io,
            &opts,
            tol,
            Maps::Exactly,
            &mut failures,
        )
        .await;
        worst.logits = worst.logits.max(e.logits);
        worst.maps = worst.maps.max(e.maps);
        worst.compared_maps += e.compared_maps;
    }
    web_sys_log(&format!(
        "{precision:?}: {} cases, {} maps; worst relative error: logits {:.2e}, maps {:.2e}",
        picked.len(),
        worst.compared_maps,
        worst.logits,
        worst.maps
    ));
    assert!(worst.compared_maps > 0, "no feature map was compared");
    assert!(
        failures.is_empty(),
        "{precision:?}: beyond {tol:e} (or not comparable):\n{}",
        failures.join("\n")
    );
}

#[wasm_bindgen_test]
async fn webgpu_matches_every_framework() {
    golden(Precision::F32, REL_TOL, |_| true).await;
}

/// f16 storage on the browser's WebGPU (packed with `pack2x16float`, so no `shader-f16`
/// feature is needed): the 32x32 cases (one per flavour; the native test runs them all).
#[wasm_bindgen_test]
async fn webgpu_in_f16_matches_every_flavour() {
    golden(Precision::F16, F16_TOL, |c| {
        c["height"].as_u64() == Some(32) && c["width"].as_u64() == Some(32)
    })
    .await;
}

/// What a format fixture must do in the browser.
enum Expect {
    /// Load from the file's bytes alone (as the page loads a picked file) and match the io
    /// file's logits and saved maps.
    Matches {
        io: &'static str,
        io_bytes: &'static [u8],
    },
    /// Be refused, with an error naming the file and saying this.
    Refused(&'static str),
    /// A transformers folder whose `config.json` sets what the weights cannot tell
    /// (`downsample_in_bottleneck` or `downsample_in_first_stage`): a page reads one file,
    /// never the files next to it, so only `tests/formats.rs` (native) can check it.
    NeedsFolder,
}

/// A case of `tests/fixtures/{dir}/manifest.json`: `file` is the manifest's checkpoint
/// (`file`, `weights` or `path`), or the `model.safetensors` inside its folder.
struct FormatCase {
    dir: &'static str,
    case: &'static str,
    file: &'static str,
    bytes: &'static [u8],
    expect: Expect,
}

macro_rules! matching {
    ($dir:literal, $case:literal, $file:literal, $io:literal) => {
        FormatCase {
            dir: $dir,
            case: $case,
            file: $file,
            bytes: include_bytes!(concat!("../../tests/fixtures/", $dir, "/", $file)),
            expect: Expect::Matches {
                io: $io,
                io_bytes: include_bytes!(concat!("../../tests/fixtures/", $dir, "/", $io)),
            },
        }
    };
}

const FORMATS: &[FormatCase] = &[
    matching!(
        "onnx",
        "tv_resnet18ish_opset13",
        "tv_resnet18ish_opset13.onnx",
        "tv_resnet18ish_opset13.io.safetensors"
    ),
    matching!(
        "onnx",
        "tv_resnet50ish_dynamo",
        "tv_resnet50ish_dynamo.onnx",
        "tv_resnet50ish_dynamo.io.safetensors"
    ),
    matching!(
        "onnx",
        "timm_resnetv2_opset17",
        "timm_resnetv2_opset17.onnx",
        "timm_resnetv2_opset17.io.safetensors"
    ),
    matching!(
        "onnx",
        "zoo_v1_basic_opset7",
        "zoo_v1_basic_opset7.onnx",
        "zoo_v1_basic_opset7.io.safetensors"
    ),
    matching!(
        "onnx",
        "zoo_v1_bottleneck_opset7",
        "zoo_v1_bottleneck_opset7.onnx",
        "zoo_v1_bottleneck_opset7.io.safetensors"
    ),
    matching!(
        "onnx",
        "zoo_v2_basic_opset12",
        "zoo_v2_basic_opset12.onnx",
        "zoo_v2_basic_opset12.io.safetensors"
    ),
    matching!(
        "onnx",
        "zoo_v2_bottleneck_opset7",
        "zoo_v2_bottleneck_opset7.onnx",
        "zoo_v2_bottleneck_opset7.io.safetensors"
    ),
    matching!(
        "onnx",
        "zoo_v1_bottleneck_opset7_f16",
        "zoo_v1_bottleneck_opset7_f16.onnx",
        "zoo_v1_bottleneck_opset7_f16.io.safetensors"
    ),
    FormatCase {
        dir: "onnx",
        case: "not_a_resnet",
        file: "not_a_resnet.onnx",
        bytes: include_bytes!("../../tests/fixtures/onnx/not_a_resnet.onnx"),
        expect: Expect::Refused("`sigmoid` (Sigmoid)"),
    },
    matching!(
        "half",
        "torchvision_basic_small_32x32_f16",
        "torchvision_basic_small_32x32_f16.weights.safetensors",
        "torchvision_basic_small_32x32_f16.io.safetensors"
    ),
    matching!(
        "half",
        "torchvision_basic_small_32x32_bf16",
        "torchvision_basic_small_32x32_bf16.weights.safetensors",
        "torchvision_basic_small_32x32_bf16.io.safetensors"
    ),
    matching!(
        "half",
        "timm_v2_small_32x32_f16",
        "timm_v2_small_32x32_f16.weights.safetensors",
        "timm_v2_small_32x32_f16.io.safetensors"
    ),
    matching!(
        "half",
        "timm_v2_small_32x32_bf16",
        "timm_v2_small_32x32_bf16.weights.safetensors",
        "timm_v2_small_32x32_bf16.io.safetensors"
    ),
    matching!(
        "hf",
        "hf_resnet18_64x64",
        "hf_resnet18_64x64/model.safetensors",
        "hf_resnet18_64x64.io.safetensors"
    ),
    matching!(
        "hf",
        "hf_resnet50_64x64",
        "hf_resnet50_64x64/model.safetensors",
        "hf_resnet50_64x64.io.safetensors"
    ),
    matching!(
        "hf",
        "hf_resnet50_noconfig",
        "hf_resnet50_noconfig.safetensors",
        "hf_resnet50_64x64.io.safetensors"
    ),
    FormatCase {
        dir: "hf",
        case: "hf_resnet50_dib_64x64",
        file: "hf_resnet50_dib_64x64",
        bytes: &[],
        expect: Expect::NeedsFolder,
    },
    FormatCase {
        dir: "hf",
        case: "hf_resnet26_dfs_45x37",
        file: "hf_resnet26_dfs_45x37",
        bytes: &[],
        expect: Expect::NeedsFolder,
    },
];

/// The three format manifests, as `tests/formats.rs` reads them.
const FORMAT_MANIFESTS: &[(&str, &str)] = &[
    (
        "onnx",
        include_str!("../../tests/fixtures/onnx/manifest.json"),
    ),
    (
        "half",
        include_str!("../../tests/fixtures/half/manifest.json"),
    ),
    ("hf", include_str!("../../tests/fixtures/hf/manifest.json")),
];

/// Every case of the three format manifests is built in once, as its manifest describes it
/// (checkpoint, io file, or no io file for a graph that must be refused), and nothing else; a
/// case is left to the native test only for a reason its manifest states.
#[wasm_bindgen_test]
fn every_format_manifest_case_is_built_in() {
    let mut listed = 0;
    for &(dir, text) in FORMAT_MANIFESTS {
        for m in manifest(text, dir) {
            listed += 1;
            let case = m["case"].as_str().expect("case name");
            let built: Vec<&FormatCase> = FORMATS
                .iter()
                .filter(|f| f.dir == dir && f.case == case)
                .collect();
            let [f] = built[..] else {
                panic!("{dir}/{case}: built in {} times, not once", built.len())
            };
            let file = ["file", "weights", "path"]
                .iter()
                .find_map(|k| m[*k].as_str())
                .unwrap_or_else(|| panic!("{dir}/{case}: the manifest names no checkpoint"));
            let io = m["io"].as_str();
            let flag = |k: &str| m[k].as_bool() == Some(true);
            match &f.expect {
                Expect::Matches { io: built_io, .. } => {
                    assert!(
                        f.file == file || f.file == format!("{file}/model.safetensors"),
                        "{dir}/{case}: built in from {}, the manifest says {file}",
                        f.file
                    );
                    assert_eq!(Some(*built_io), io, "{dir}/{case}: io file");
                    // A folder read as its weights file alone: only if its config sets
                    // nothing the weights cannot tell.
                    if f.file != file {
                        assert!(
                            !flag("downsample_in_bottleneck") && !flag("downsample_in_first_stage"),
                            "{dir}/{case}: its config.json changes the network; mark it NeedsFolder"
                        );
                    }
                }
                Expect::Refused(_) => {
                    assert_eq!(f.file, file, "{dir}/{case}");
                    assert_eq!(io, None, "{dir}/{case} has a reference: it must match it");
                }
                Expect::NeedsFolder => {
                    assert_eq!(f.file, file, "{dir}/{case}");
                    assert!(
                        flag("has_config")
                            && (flag("downsample_in_bottleneck")
                                || flag("downsample_in_first_stage")),
                        "{dir}/{case}: its manifest gives no reason to leave it to the native test"
                    );
                }
            }
        }
    }
    assert_eq!(
        FORMATS.len(),
        listed,
        "built-in format cases that no manifest lists"
    );
}

/// Every checkpoint format the page accepts, through the page's own path
/// ([`Model::from_bytes`] on the file's bytes alone), against the references of
/// `tests/formats.rs` (transformers, torch, onnxruntime): logits and every saved map.
#[wasm_bindgen_test]
async fn every_checkpoint_format_loads_from_bytes_and_matches() {
    let ctx = context().await;
    let mut failures = Vec::new();
    let mut worst = Errors::default();
    let mut matched = 0;
    for f in FORMATS {
        let name = format!("{}/{}", f.dir, f.file);
        // As the page names a picked file: its own name, no folder.
        let file = Path::new(f.file).file_name().unwrap().to_str().unwrap();
        match f.expect {
            Expect::Matches { io_bytes, .. } => {
                let model = Model::from_bytes(f.bytes, file, &LoadOptions::default())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let e = run_and_compare(
                    &ctx,
                    &name,
                    &model.network,
                    io_bytes,
                    &SessionOptions::default(),
                    REL_TOL,
                    Maps::Saved,
                    &mut failures,
                )
                .await;
                worst.logits = worst.logits.max(e.logits);
                worst.maps = worst.maps.max(e.maps);
                worst.compared_maps += e.compared_maps;
                matched += 1;
            }
            Expect::Refused(why) => match Model::from_bytes(f.bytes, file, &LoadOptions::default())
            {
                Ok(_) => failures.push(format!("{name}: loaded; it must be refused")),
                Err(e) => {
                    let e = e.to_string();
                    if !(e.contains(why) && e.contains(file)) {
                        failures.push(format!("{name}: refused with {e:?}, not naming {why}"));
                    }
                }
            },
            Expect::NeedsFolder => {}
        }
    }
    web_sys_log(&format!(
        "{matched} format cases, {} maps; worst relative error: logits {:.2e}, maps {:.2e}",
        worst.compared_maps, worst.logits, worst.maps
    ));
    assert!(matched > 0 && worst.compared_maps >= matched);
    assert!(
        failures.is_empty(),
        "beyond {REL_TOL:e} (or not comparable):\n{}",
        failures.join("\n")
    );
}

/// Printed by wasm-bindgen-test-runner with the test output.
fn web_sys_log(line: &str) {
    wasm_bindgen_test::console_log!("{line}");
}
