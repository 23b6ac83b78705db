//! Soak: the embedding API classifies `RESNET_SOAK_IMAGES` (default 2016) images from 4
//! threads sharing one `Classifier`: every result equals the single-thread run, and resident
//! memory after the run stays within 5% of what it was after the first 100 images (no leak per
//! call: uniforms, bind groups, read-backs and mappings are reused).
//!
//! A few seconds on lavapipe, so it runs in CI; a longer soak:
//! `RESNET_SOAK_IMAGES=50000 cargo test --release --test soak -- --nocapture`.

mod common;

use resnet_wgpu::preprocess::{Preprocess, load_image};
use resnet_wgpu::{Classifier, ClassifierOptions, Model, Prediction, labels::Labels};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/digits")
}

/// Resident set size of this process, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn four_threads_share_one_classifier_without_drift_or_growth() {
    let total: usize = std::env::var("RESNET_SOAK_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2016);
    let mut files: Vec<PathBuf> = std::fs::read_dir(digits().join("heldout"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let images: Vec<image::RgbImage> = files.iter().map(|f| load_image(f).unwrap()).collect();
    let model = Model::load(digits().join("digits.safetensors")).unwrap();
    let classifier = Classifier::new(
        &model,
        &ClassifierOptions {
            max_batch: 8,
            preprocess: Some(Preprocess::for_flavour(model.flavour()).with_overrides(
                Some(32),
                Some(32),
                false,
            )),
            labels: Some(Labels::from_file(&digits().join("labels.txt"), 10).unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    // Work items: chunks of 1..=8 images (varying sizes exercise the trailing sub-batch path).
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut at = 0;
    while at < total {
        let n = (1 + chunks.len() % 8).min(total - at);
        chunks.push((at..at + n).map(|i| i % images.len()).collect());
        at += n;
    }
    let run = |chunk: &[usize]| -> Vec<Vec<Prediction>> {
        let batch: Vec<image::RgbImage> = chunk.iter().map(|&i| images[i].clone()).collect();
        classifier.classify(&batch, 3).unwrap()
    };
    let serial: Vec<Vec<Vec<Prediction>>> = chunks.iter().map(|c| run(c)).collect();

    let done = AtomicUsize::new(0);
    let rss_after_100 = Mutex::new(None);
    let next = AtomicUsize::new(0);
    let parallel: Vec<Mutex<Option<Vec<Vec<Prediction>>>>> =
        chunks.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { break };
                    *parallel[i].lock().unwrap() = Some(run(chunk));
                    let n = done.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
                    if n >= 100 {
                        rss_after_100.lock().unwrap().get_or_insert_with(rss_bytes);
                    }
                }
            });
        }
    });
    let rss_end = rss_bytes();
    let rss_100 = rss_after_100.into_inner().unwrap().expect("100 images ran");
    assert_eq!(done.into_inner(), total);
    for (i, (want, got)) in serial.iter().zip(parallel).enumerate() {
        let got = got.into_inner().unwrap().expect("every chunk ran");
        assert_eq!(&got, want, "chunk {i}: 4 threads vs one");
    }
    let growth = rss_end as f64 / rss_100 as f64 - 1.0;
    eprintln!(
        "soak: {total} images from 4 threads, results equal to one thread's; resident memory \
         {:.1} MiB after the first 100 images, {:.1} MiB after all ({:+.2}%)",
        rss_100 as f64 / 1048576.0,
        rss_end as f64 / 1048576.0,
        100.0 * growth
    );
    assert!(
        growth <= 0.05,
        "resident memory grew {:.1}%",
        100.0 * growth
    );
}
