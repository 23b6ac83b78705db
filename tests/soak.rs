//! Soak: the embedding API classifies `RESNET_SOAK_IMAGES` (default 2016) images from 4
//! threads sharing one fresh `Classifier`: every result equals a single-thread run made
//! afterwards, and resident memory after the run stays within 5% of what it was after the
//! first 100 images (no leak per call: uniforms, bind groups, read-backs and mappings are
//! reused).
//!
//! A few seconds on lavapipe, so it runs in CI; a longer soak:
//! `RESNET_SOAK_IMAGES=50000 cargo test --release --test soak -- --nocapture`.

mod common;

use resnet_wgpu::preprocess::load_image;
use resnet_wgpu::{Classifier, ClassifierOptions, Model, Prediction, labels::Labels};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/digits")
}

/// Resident set size of this process (`VmRSS` of /proc/self/status).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
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
            preprocess: Some(model.preprocess().with_overrides(Some(32), Some(32), false)),
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
    let done = AtomicUsize::new(0);
    let rss_after_100 = Mutex::new(None);
    let next = AtomicUsize::new(0);
    // A digest per chunk, allocated up front: keeping every prediction (labels are Strings)
    // would grow the heap by itself and mask or fake a leak.
    let parallel: Vec<AtomicU64> = chunks.iter().map(|_| AtomicU64::new(0)).collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { break };
                    parallel[i].store(digest(&run(chunk)), Ordering::Relaxed);
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
    // The single-thread answers, after the measurement.
    for (i, (chunk, got)) in chunks.iter().zip(parallel).enumerate() {
        let want = digest(&run(chunk));
        assert_eq!(got.into_inner(), want, "chunk {i}: 4 threads vs one");
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

/// FNV-1a over every prediction's index, label and probability bits (0 is "not run").
fn digest(top: &[Vec<Prediction>]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for image in top {
        for p in image {
            eat(&p.index.to_le_bytes());
            eat(p.label.as_bytes());
            eat(&p.probability.to_bits().to_le_bytes());
        }
        eat(b"|");
    }
    h | 1
}
