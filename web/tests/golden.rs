//! The golden fixtures in a real browser: headless Chromium's WebGPU (SwiftShader on machines
//! without a GPU) runs every case of `tests/fixtures/manifest.json` through the library's async
//! API and must match the logits and feature maps the frameworks computed, at the tolerance
//! of the native golden test (`tests/golden.rs`): |Δ| ≤ 1e-3 · max(1, max|reference|).
//! The other checkpoint formats (ONNX, F16/BF16 safetensors, a transformers file) load from
//! their bytes alone, as the page loads a picked file, and match `tests/formats.rs`' references.
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
use resnet_wgpu::model::load::{LoadOptions, load_network_from_bytes};
use resnet_wgpu::tensor_file::{f32_data, parse};
use std::path::Path;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The native golden test's tolerance.
const REL_TOL: f64 = 1e-3;

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

/// Every case the manifest lists is built in, and nothing else: a case added to the fixtures
/// cannot be silently left out here.
#[wasm_bindgen_test]
fn every_manifest_case_is_built_in() {
    let manifest: serde_json::Value = serde_json::from_str(MANIFEST).expect("manifest is JSON");
    let mut listed: Vec<&str> = manifest
        .as_array()
        .expect("manifest is a list")
        .iter()
        .map(|c| c["case"].as_str().expect("case name"))
        .collect();
    let mut built: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    listed.sort_unstable();
    built.sort_unstable();
    assert_eq!(built, listed);
}

#[wasm_bindgen_test]
async fn webgpu_matches_every_framework() {
    let ctx = context().await;
    web_sys_log(&format!("adapter: {}", ctx.summary()));
    let mut failures = Vec::new();
    let mut worst = 0.0f64;
    let mut maps_compared = 0;
    for &(name, weights, io) in CASES {
        let net = load_network_from_bytes(weights, Path::new(name), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let io = parse(Path::new(name), io).unwrap();
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
        .unwrap();
        let session = Session::with_options_async(&ctx, graph, n, &SessionOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = session
            .run_nchw_async(&input, n)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (_, want) = tensor("logits");
        let logit_err = common::rel_err(&out.logits, &want);
        match logit_err {
            Ok(e) if e <= REL_TOL => worst = worst.max(e),
            Ok(e) => failures.push(format!("{name}: logits {e:.2e}")),
            Err(ref why) => failures.push(format!("{name}: logits: {why}")),
        }
        let expected_maps = io.names().iter().filter(|t| t.starts_with("feat/")).count();
        if out.features.len() != expected_maps {
            failures.push(format!(
                "{name}: {} feature maps, the framework saved {expected_maps}",
                out.features.len()
            ));
        }
        for f in &out.features {
            let (_, want) = tensor(&f.name);
            maps_compared += 1;
            match common::rel_err(&f.data, &want) {
                Ok(e) if e <= REL_TOL => {}
                Ok(e) => failures.push(format!("{name}: {} {e:.2e}", f.name)),
                Err(why) => failures.push(format!("{name}: {}: {why}", f.name)),
            }
        }
        if let Ok(e) = logit_err {
            web_sys_log(&format!(
                "{name:<36} webgpu {e:.2e} ({} maps)",
                out.features.len()
            ));
        }
    }
    web_sys_log(&format!(
        "{} cases, {maps_compared} maps; worst relative logit error {worst:.2e}",
        CASES.len()
    ));
    assert!(maps_compared > 0, "no feature map was compared");
    assert!(
        failures.is_empty(),
        "beyond {REL_TOL:e} (or not comparable):\n{}",
        failures.join("\n")
    );
}

/// `(file name, checkpoint, io file)` of the other formats the CLI reads (issue 12), as a
/// visitor picks them: one file's bytes, nothing next to it. The transformers checkpoint is
/// the one without a config (a page cannot read the files next to a picked one).
macro_rules! format_case {
    ($dir:literal, $file:literal, $io:literal) => {
        (
            $file,
            include_bytes!(concat!("../../tests/fixtures/", $dir, "/", $file)).as_slice(),
            include_bytes!(concat!("../../tests/fixtures/", $dir, "/", $io)).as_slice(),
        )
    };
}

const FORMATS: &[(&str, &[u8], &[u8])] = &[
    format_case!(
        "onnx",
        "tv_resnet18ish_opset13.onnx",
        "tv_resnet18ish_opset13.io.safetensors"
    ),
    format_case!(
        "onnx",
        "tv_resnet50ish_dynamo.onnx",
        "tv_resnet50ish_dynamo.io.safetensors"
    ),
    format_case!(
        "onnx",
        "timm_resnetv2_opset17.onnx",
        "timm_resnetv2_opset17.io.safetensors"
    ),
    format_case!(
        "onnx",
        "zoo_v1_basic_opset7.onnx",
        "zoo_v1_basic_opset7.io.safetensors"
    ),
    format_case!(
        "onnx",
        "zoo_v1_bottleneck_opset7.onnx",
        "zoo_v1_bottleneck_opset7.io.safetensors"
    ),
    format_case!(
        "onnx",
        "zoo_v2_basic_opset12.onnx",
        "zoo_v2_basic_opset12.io.safetensors"
    ),
    format_case!(
        "onnx",
        "zoo_v2_bottleneck_opset7.onnx",
        "zoo_v2_bottleneck_opset7.io.safetensors"
    ),
    format_case!(
        "onnx",
        "zoo_v1_bottleneck_opset7_f16.onnx",
        "zoo_v1_bottleneck_opset7_f16.io.safetensors"
    ),
    format_case!(
        "half",
        "torchvision_basic_small_32x32_f16.weights.safetensors",
        "torchvision_basic_small_32x32_f16.io.safetensors"
    ),
    format_case!(
        "half",
        "torchvision_basic_small_32x32_bf16.weights.safetensors",
        "torchvision_basic_small_32x32_bf16.io.safetensors"
    ),
    format_case!(
        "half",
        "timm_v2_small_32x32_f16.weights.safetensors",
        "timm_v2_small_32x32_f16.io.safetensors"
    ),
    format_case!(
        "half",
        "timm_v2_small_32x32_bf16.weights.safetensors",
        "timm_v2_small_32x32_bf16.io.safetensors"
    ),
    format_case!(
        "hf",
        "hf_resnet50_noconfig.safetensors",
        "hf_resnet50_64x64.io.safetensors"
    ),
];

/// Every checkpoint format the page accepts, through the page's own path
/// ([`Model::from_bytes`] on the file's bytes alone), against the references of
/// `tests/formats.rs` (transformers, torch, onnxruntime) at the same tolerance.
#[wasm_bindgen_test]
async fn every_checkpoint_format_loads_from_bytes_and_matches() {
    let ctx = context().await;
    let mut failures = Vec::new();
    for &(file, weights, io) in FORMATS {
        let model = Model::from_bytes(weights, file, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let io = parse(Path::new(file), io).unwrap();
        let tensor = |t: &str| {
            let view = io.tensor(t).unwrap_or_else(|e| panic!("{file}: {t}: {e}"));
            (view.shape().to_vec(), f32_data(t, &view).unwrap())
        };
        let (shape, input) = tensor("input");
        let [n, _, h, w] = shape[..] else {
            panic!("{file}: input is not 4-D")
        };
        let net = &model.network;
        let graph = lower(&net.arch, &net.params, h, w, &LowerOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let session = Session::with_options_async(&ctx, graph, n, &SessionOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let out = session
            .run_nchw_async(&input, n)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        match common::rel_err(&out.logits, &tensor("logits").1) {
            Ok(e) if e <= REL_TOL => web_sys_log(&format!("{file:<56} webgpu {e:.2e}")),
            Ok(e) => failures.push(format!("{file}: logits {e:.2e}")),
            Err(why) => failures.push(format!("{file}: logits: {why}")),
        }
    }
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
