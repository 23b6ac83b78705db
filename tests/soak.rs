//! Soak: the embedding API classifies `RESNET_SOAK_IMAGES` (default 2016) images from 4
//! threads sharing one fresh `Classifier`, in chunks of 1 to 8 images (every planned
//! sub-batch size, padded ones included): every image's top 3 is PyTorch's
//! (`assets/digits/expected.json`: classes in order, probabilities within [`PROB_TOL`]), every
//! chunk equals a single-thread run made afterwards, and no call leaks: the library's live
//! heap after the run is within [`HEAP_SLACK`] of what it was after the first 100 images
//! (counted by this test's allocator, so the check does not depend on the driver's memory,
//! the machine or timing). Resident memory is printed for the record.
//!
//! A few seconds on lavapipe, so it runs in CI; a longer soak:
//! `RESNET_SOAK_IMAGES=50000 cargo test --release --test soak -- --nocapture`.

mod common;

use common::alloc::LIVE;
use resnet_wgpu::preprocess::load_image;
use resnet_wgpu::{Classifier, ClassifierOptions, Model, Prediction, labels::Labels};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[global_allocator]
static ALLOCATOR: common::alloc::Counting = common::alloc::Counting;

/// Growth of the live heap allowed between the 100th image and the end: a leak of 256 bytes
/// per call (a bind group, a uniform buffer, a mapping left behind) over the default run's
/// 504 calls exceeds it.
const HEAP_SLACK: usize = 128 << 10;
/// Relative tolerance on each top-3 probability against PyTorch's (as tests/classify.rs).
const PROB_TOL: f32 = 5e-5;

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

/// PyTorch's top 3 (class, probability) of a held-out digit.
type Top3 = [(usize, f32); 3];

/// Images whose answer is not the framework's (0: all are).
fn mismatches(got: &[Vec<Prediction>], want: &[&Top3]) -> usize {
    if got.len() != want.len() {
        return want.len().max(1);
    }
    got.iter()
        .zip(want)
        .filter(|(g, w)| {
            g.len() != 3
                || g.iter().zip(w.iter()).any(|(p, &(class, q))| {
                    // NaN-aware: a NaN probability is a mismatch.
                    let close = (p.probability - q).abs() <= PROB_TOL * q;
                    p.index != class || !close
                })
        })
        .count()
}

#[test]
fn four_threads_share_one_classifier_without_drift_or_growth() {
    let total: usize = std::env::var("RESNET_SOAK_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2016);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(digits().join("expected.json")).unwrap())
            .unwrap();
    let mut cases: Vec<(String, Top3)> = expected["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let mut top = [(0, 0.0); 3];
            for (k, t) in top.iter_mut().enumerate() {
                *t = (
                    i["top5"][k].as_u64().unwrap() as usize,
                    i["probabilities_top5"][k].as_f64().unwrap() as f32,
                );
            }
            (i["file"].as_str().unwrap().to_string(), top)
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    let images: Vec<image::RgbImage> = cases
        .iter()
        .map(|(f, _)| load_image(&digits().join(f)).unwrap())
        .collect();
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
    // Work items: chunks of 1..=8 images (sizes the plan has and sizes it pads).
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
    let want = |chunk: &[usize]| -> Vec<&Top3> { chunk.iter().map(|&i| &cases[i].1).collect() };
    let checked = AtomicUsize::new(0);
    let wrong = AtomicUsize::new(0);
    let after_100 = Mutex::new(None);
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
                    let got = run(chunk);
                    wrong.fetch_add(mismatches(&got, &want(chunk)), Ordering::Relaxed);
                    parallel[i].store(digest(&got), Ordering::Relaxed);
                    // Answers compared with PyTorch's (a short answer counts as wrong above).
                    let answered = got.len().min(chunk.len());
                    drop(got);
                    let n = checked.fetch_add(answered, Ordering::Relaxed) + answered;
                    if n >= 100 {
                        after_100
                            .lock()
                            .unwrap()
                            .get_or_insert_with(|| (LIVE.load(Ordering::Relaxed), rss_bytes()));
                    }
                }
            });
        }
    });
    let (heap_end, rss_end) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    let (heap_100, rss_100) = after_100.into_inner().unwrap().expect("100 images ran");
    assert_eq!(wrong.into_inner(), 0, "images not answered as PyTorch did");
    assert_eq!(checked.into_inner(), total, "images checked");
    // The single-thread answers, after the measurement.
    for (i, (chunk, got)) in chunks.iter().zip(parallel).enumerate() {
        let want = digest(&run(chunk));
        assert_eq!(got.into_inner(), want, "chunk {i}: 4 threads vs one");
    }
    let mib = |b: f64| b / 1048576.0;
    eprintln!(
        "soak: {total} images in {} calls from 4 threads, each PyTorch's answer and equal to \
         one thread's; live heap {:.2} MiB after the first 100 images, {:.2} MiB after all \
         ({:+} bytes); resident {:.1} MiB -> {:.1} MiB",
        chunks.len(),
        mib(heap_100 as f64),
        mib(heap_end as f64),
        heap_end as i64 - heap_100 as i64,
        mib(rss_100 as f64),
        mib(rss_end as f64),
    );
    assert!(
        heap_end <= heap_100 + HEAP_SLACK,
        "the live heap grew by {} bytes over {} calls",
        heap_end - heap_100,
        chunks.len()
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
