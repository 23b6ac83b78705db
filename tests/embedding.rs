//! The embedding API as an app uses it: its own wgpu device, GPU-resident input and output
//! encoded into its own command encoder, and several threads sharing one classifier.

mod common;

use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::layout::nchw_to_nhwc;
use resnet_wgpu::preprocess::load_image;
use resnet_wgpu::{Classifier, ClassifierOptions, Model};
use std::path::{Path, PathBuf};

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/digits")
}

fn options() -> ClassifierOptions {
    let pre = resnet_wgpu::model::Flavour::Torchvision
        .preprocess()
        .with_overrides(Some(32), Some(32), false);
    ClassifierOptions {
        max_batch: 4,
        preprocess: Some(pre),
        labels: Some(
            resnet_wgpu::labels::Labels::from_file(&digits().join("labels.txt"), 10).unwrap(),
        ),
        ..Default::default()
    }
}

/// A device the "app" opened itself, with plain wgpu calls.
fn app_device() -> GpuContext {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("a wgpu adapter (apt-get install mesa-vulkan-drivers)");
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .unwrap();
    GpuContext::from_device(device, queue, adapter.get_info())
}

/// The first `n` held-out digits, in file order.
fn images(n: usize) -> Vec<image::RgbImage> {
    expected(n)
        .iter()
        .map(|e| load_image(&digits().join(&e.file)).unwrap())
        .collect()
}

/// What PyTorch computed for a held-out digit (`assets/digits/expected.json`).
struct Expected {
    file: String,
    top1: usize,
    top1_probability: f32,
    logits: Vec<f32>,
}

/// The framework's answers for the first `n` held-out digits, in file order.
fn expected(n: usize) -> Vec<Expected> {
    let text = std::fs::read_to_string(digits().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut all: Vec<Expected> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| Expected {
            file: i["file"].as_str().unwrap().to_string(),
            top1: i["top1"].as_u64().unwrap() as usize,
            top1_probability: i["probabilities_top5"][0].as_f64().unwrap() as f32,
            logits: i["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect();
    all.sort_by(|a, b| a.file.cmp(&b.file));
    assert!(all.len() >= n);
    all.truncate(n);
    all
}

/// f32 logits against PyTorch's, relative to max(1, max|logit|) (as tests/golden.rs).
const TOL: f64 = 1e-5;

/// Asserts that `top` (one answer per image) holds each image's framework top-1 with its
/// probability (relative [`TOL`]).
#[track_caller]
fn assert_top1(top: &[Vec<resnet_wgpu::Prediction>], want: &[Expected]) {
    assert_eq!(top.len(), want.len());
    for (t, w) in top.iter().zip(want) {
        let first = t.first().unwrap_or_else(|| panic!("{}: no answer", w.file));
        assert_eq!(first.index, w.top1, "{}", w.file);
        assert_eq!(first.label, w.top1.to_string(), "{}", w.file);
        let e = f64::from((first.probability - w.top1_probability).abs())
            / f64::from(w.top1_probability);
        assert!(
            e <= TOL,
            "{}: {} vs {}",
            w.file,
            first.probability,
            w.top1_probability
        );
    }
}

/// Asserts that `logits` (`[n, 10]`) are the framework's.
#[track_caller]
fn assert_logits(logits: &[f32], want: &[Expected], what: &str) {
    let all: Vec<f32> = want.iter().flat_map(|w| w.logits.clone()).collect();
    common::assert_close(logits, &all, TOL, what);
}

#[test]
fn classifier_on_the_apps_device_with_gpu_resident_io() {
    let ctx = app_device();
    let model = Model::load(digits().join("digits.safetensors")).unwrap();
    let classifier = Classifier::with_context(&model, &ctx, &options()).unwrap();
    let imgs = images(3);
    let top = classifier.classify(&imgs, 1).unwrap();
    assert_top1(&top, &expected(3));
    assert!(top.iter().all(|t| t.len() == 1), "top 1 asked for");

    // The app uploads NHWC input itself, encodes the forward pass into its own encoder and
    // copies the logits out: no read-back by the library.
    let mut nchw = Vec::new();
    for img in &imgs {
        nchw.extend(classifier.preprocess().apply(img).unwrap());
    }
    let want = classifier.logits(&nchw, 3).unwrap();
    assert_logits(&want, &expected(3), "run_nchw");
    let session = classifier.session();
    let (input, in_off, in_len) = session.input_buffer();
    let nhwc = nchw_to_nhwc(&nchw, 3, 3, 32, 32);
    assert!((nhwc.len() * 4) as u64 <= in_len);
    ctx.queue
        .write_buffer(input, in_off, bytemuck::cast_slice(&nhwc));
    let (logits, out_off, _) = session.logits_buffer();
    let bytes = (3 * 10 * 4) as u64;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app staging"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    session.encode(&mut encoder, 3).unwrap();
    encoder.copy_buffer_to_buffer(logits, out_off, &staging, 0, bytes);
    ctx.queue.submit([encoder.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let got: Vec<f32> =
        bytemuck::cast_slice(&staging.slice(..).get_mapped_range().unwrap()).to_vec();
    assert_eq!(got, want, "encoded pass gives the same logits as run_nchw");
    assert!(
        session
            .encode(
                &mut ctx.device.create_command_encoder(&Default::default()),
                5
            )
            .is_err()
    );
}

#[test]
fn one_classifier_serves_several_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Classifier>();
    let model = Model::load(digits().join("digits.safetensors")).unwrap();
    let classifier = Classifier::new(&model, &options()).unwrap();
    let imgs = images(8);
    let serial: Vec<_> = imgs
        .chunks(2)
        .map(|c| classifier.classify(c, 3).unwrap())
        .collect();
    assert_top1(&serial.concat(), &expected(8));
    std::thread::scope(|s| {
        let handles: Vec<_> = imgs
            .chunks(2)
            .map(|c| s.spawn(|| classifier.classify(c, 3).unwrap()))
            .collect();
        for (h, want) in handles.into_iter().zip(&serial) {
            assert_eq!(&h.join().unwrap(), want);
        }
    });
}

/// The async entry points (the browser's only API) natively, under any executor: the same
/// engine as the blocking calls, so the same device gives bit-identical answers; bad input is
/// the same error.
#[test]
fn async_entry_points_give_the_blocking_answers() {
    let ctx = app_device();
    let model = Model::from_bytes(
        &std::fs::read(digits().join("digits.safetensors")).unwrap(),
        "digits.safetensors",
        &Default::default(),
    )
    .unwrap();
    let imgs = images(6);
    let blocking = Classifier::with_context(&model, &ctx, &options()).unwrap();
    let want = blocking.classify(&imgs, 5).unwrap();
    let (got, logits, bad) = pollster::block_on(async {
        let c = Classifier::with_context_async(&model, &ctx, &options())
            .await
            .unwrap();
        let got = c.classify_async(&imgs, 5).await.unwrap();
        let input: Vec<f32> = imgs
            .iter()
            .flat_map(|i| c.preprocess().apply(i).unwrap())
            .collect();
        let logits = c.logits_async(&input, imgs.len()).await.unwrap();
        let bad = c.logits_async(&input[1..], imgs.len()).await;
        (got, logits, bad)
    });
    assert_top1(&got, &expected(6));
    assert_eq!(got, want, "classify_async vs classify");
    let input: Vec<f32> = imgs
        .iter()
        .flat_map(|i| blocking.preprocess().apply(i).unwrap())
        .collect();
    assert_logits(&logits, &expected(6), "logits_async");
    assert_eq!(logits, blocking.logits(&input, 6).unwrap(), "logits_async");
    match bad {
        Err(resnet_wgpu::Error::Input(m)) => assert!(m.contains("input values"), "{m}"),
        other => panic!("a short input must be an Input error, got {other:?}"),
    }
}
