//! `WebLogits`, the browser peer benchmark's engine (`peer/web/`), in a real browser: a
//! checkpoint's bytes in, the framework's logits out (the golden fixture's, within the golden
//! tests' f32 tolerance), and a per-dispatch profile with one row per planned step.
//!
//! Run with the other wasm tests (`.ci/run`; the README's "Tests").

#![cfg(target_arch = "wasm32")]

use resnet_web::WebLogits;
use resnet_wgpu::tensor_file::{f32_data, parse};
use std::path::Path;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WEIGHTS: &[u8] =
    include_bytes!("../../tests/fixtures/torchvision_small_32x32.weights.safetensors");
const IO: &[u8] = include_bytes!("../../tests/fixtures/torchvision_small_32x32.io.safetensors");

/// `tests/golden.rs`' f32 tolerance: |Δ| ≤ REL_TOL · max(1, max|reference|).
const REL_TOL: f32 = 1e-5;

#[wasm_bindgen_test]
async fn weblogits_matches_the_framework_and_profiles_every_step() {
    let io = parse(Path::new("io.safetensors"), IO).unwrap();
    let tensor = |t: &str| {
        let view = io.tensor(t).unwrap();
        (view.shape().to_vec(), f32_data(t, &view).unwrap())
    };
    let (shape, input) = tensor("input");
    let (_, want) = tensor("logits");
    let [n, _, h, w] = shape[..] else {
        panic!("input is not 4-D")
    };
    assert_eq!(h, w, "the page's sessions are square");
    let model = WebLogits::load(WEIGHTS.to_vec(), "m.safetensors".into(), n as u32, h as u32)
        .await
        .unwrap_or_else(|e| panic!("{:?}", wasm_bindgen::JsValue::from(e)));

    let got = JsFuture::from(model.logits(input.clone())).await.unwrap();
    let got = got.dyn_into::<js_sys::Float32Array>().unwrap().to_vec();
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= REL_TOL * scale,
        "logits differ by {worst} (scale {scale})"
    );

    // Timestamp queries are optional in WebGPU: without them `profile` says so.
    match JsFuture::from(model.profile(input)).await {
        Ok(json) => {
            let rows: serde_json::Value = serde_json::from_str(&json.as_string().unwrap()).unwrap();
            let rows = rows.as_array().unwrap();
            assert!(rows.len() > 10, "{} rows", rows.len());
            for r in rows {
                assert!(r["name"].is_string() && r["ms"].as_f64().is_some_and(|ms| ms >= 0.0));
            }
        }
        Err(e) => {
            let message = js_sys::Error::from(e).message();
            assert!(String::from(message).contains("timestamp"));
        }
    }
}
