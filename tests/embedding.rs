//! The embedding API as an app uses it: its own wgpu device, GPU-resident input and output
//! encoded into its own command encoder, and several threads sharing one classifier.

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

fn images(n: usize) -> Vec<image::RgbImage> {
    let mut files: Vec<_> = std::fs::read_dir(digits().join("heldout"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .take(n)
        .map(|f| load_image(f).unwrap())
        .collect()
}

#[test]
fn classifier_on_the_apps_device_with_gpu_resident_io() {
    let ctx = app_device();
    let model = Model::load(digits().join("digits.safetensors")).unwrap();
    let classifier = Classifier::with_context(&model, &ctx, &options()).unwrap();
    let imgs = images(3);
    let top = classifier.classify(&imgs, 1).unwrap();
    assert_eq!(top.len(), 3);

    // The app uploads NHWC input itself, encodes the forward pass into its own encoder and
    // copies the logits out: no read-back by the library.
    let mut nchw = Vec::new();
    for img in &imgs {
        nchw.extend(classifier.preprocess().apply(img).unwrap());
    }
    let want = classifier.logits(&nchw, 3).unwrap();
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
