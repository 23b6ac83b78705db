//! `resnet classify` on the committed digits classifier (`assets/digits`, trained with PyTorch
//! by `tools/train_digits.py`): for every held-out image the framework's top 5 classes in its
//! order, each probability within [`PROB_TOL`] of the framework's (relative), and the
//! framework's accuracy over the whole set.

use std::path::{Path, PathBuf};
use std::process::Command;

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/digits")
}

/// Relative tolerance on each top-5 probability: `|p - q| <= PROB_TOL * q`. A probability's
/// relative error is the absolute error of its logit's difference to the log-sum-exp: logits
/// up to ~12 here, f32 errors ~5e-7 relative; measured worst 9.1e-6 (lavapipe) over the 360
/// images. A drift of 1e-4 relative in the logits (an epsilon mix-up) moves it by ~1e-3.
const PROB_TOL: f64 = 5e-5;

/// Asserts that one `--json` result is the framework's for `w` (an entry of expected.json):
/// five classes, the framework's top 5 in its order with their labels, probabilities within
/// [`PROB_TOL`]. Returns the worst relative probability error.
#[track_caller]
fn assert_matches_framework(g: &serde_json::Value, w: &serde_json::Value) -> f64 {
    let file = w["file"].as_str().unwrap();
    assert!(
        g["file"].as_str().unwrap().ends_with(file),
        "{} for {file}",
        g["file"]
    );
    let top = g["top"].as_array().unwrap_or_else(|| panic!("{file}: {g}"));
    let want_top = w["top5"].as_array().unwrap();
    let want_p = w["probabilities_top5"].as_array().unwrap();
    assert_eq!(
        (top.len(), want_top.len(), want_p.len()),
        (5, 5, 5),
        "{file}"
    );
    let mut worst = 0.0f64;
    for ((p, class), q) in top.iter().zip(want_top).zip(want_p) {
        let index = p["index"].as_u64().unwrap();
        assert_eq!(
            Some(index),
            class.as_u64(),
            "{file}: top 5 {top:?} vs {want_top:?}"
        );
        assert_eq!(p["label"].as_str().unwrap(), index.to_string(), "{file}");
        let (p, q) = (p["probability"].as_f64().unwrap(), q.as_f64().unwrap());
        assert!(p.is_finite() && q > 0.0, "{file}: {p} vs {q}");
        let e = (p - q).abs() / q;
        assert!(
            e <= PROB_TOL,
            "{file}: class {index}: {p} vs {q} ({e:.2e} relative)"
        );
        worst = worst.max(e);
    }
    worst
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(assets().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn classify(extra: &[&str], files: &[PathBuf]) -> (bool, serde_json::Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_resnet"))
        .arg("classify")
        .arg("--weights")
        .arg(assets().join("digits.safetensors"))
        .arg("--labels")
        .arg(assets().join("labels.txt"))
        .arg("--json")
        .args(if extra.contains(&"--batch") {
            &[][..]
        } else {
            &["--batch", "64"][..]
        })
        .args(extra)
        .args(files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let json = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (o.status.success(), json, stderr)
}

#[test]
fn digits_match_the_framework_image_by_image() {
    let want = expected();
    let images = want["images"].as_array().unwrap();
    let files: Vec<PathBuf> = images
        .iter()
        .map(|i| assets().join(i["file"].as_str().unwrap()))
        .collect();
    // The model was evaluated with torchvision's transform at 32: Resize(32) + CenterCrop(32).
    let (ok, got, stderr) = classify(&["--size", "32", "--resize", "32"], &files);
    assert!(ok, "{stderr}");
    let got = got.as_array().unwrap();
    assert_eq!(images.len() as u64, want["count"].as_u64().unwrap());
    assert_eq!(got.len(), images.len());
    let mut correct = 0;
    let mut worst = 0.0f64;
    for (g, w) in got.iter().zip(images) {
        worst = worst.max(assert_matches_framework(g, w));
        correct += usize::from(g["top"][0]["index"] == w["label"]);
    }
    eprintln!("digits: worst relative probability error {worst:.2e}");
    let accuracy = correct as f64 / images.len() as f64;
    let framework = want["accuracy"].as_f64().unwrap();
    assert!(
        (accuracy - framework).abs() < 1e-9,
        "accuracy {accuracy} vs the framework's {framework}"
    );
    eprintln!(
        "digits: {correct}/{} correct ({:.2}%)",
        images.len(),
        100.0 * accuracy
    );
}

#[test]
fn a_bad_file_is_reported_by_name_and_the_rest_still_classified() {
    let want = expected();
    let first = &want["images"][0];
    let good = assets().join(first["file"].as_str().unwrap());
    let bad = assets().join("labels.txt");
    let (ok, got, _) = classify(&["--no-resize", "--size", "32"], &[bad.clone(), good]);
    assert!(!ok, "exit code says something failed");
    let got = got.as_array().unwrap();
    assert_eq!(got[0]["file"].as_str().unwrap(), bad.display().to_string());
    assert!(got[0]["error"].as_str().unwrap().contains("labels.txt"));
    assert!(got[0].get("top").is_none());
    // --no-resize: the 32x32 digits are only normalised, the same as Resize(32)+CenterCrop(32).
    assert_eq!(got[1]["top"][0]["index"].as_u64(), first["top1"].as_u64());
}

#[test]
fn no_resize_rejects_an_image_of_another_size() {
    let img =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess/rgb_199x257.png");
    let (ok, got, _) = classify(&["--no-resize", "--size", "32"], &[img]);
    assert!(!ok);
    assert!(
        got[0]["error"].as_str().unwrap().contains("32"),
        "{}",
        got[0]
    );
}

/// `--no-resize` alone: every image runs at its own size (any size >= 32x32, square or not),
/// grouped into batches by size; one too small for the network fails alone.
#[test]
fn no_resize_runs_each_image_at_its_own_size() {
    let want = expected();
    let digit = &want["images"][0];
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-own-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = dir.join("tiny_20x20.png");
    image::RgbImage::from_pixel(20, 20, image::Rgb([9, 9, 9]))
        .save(&tiny)
        .unwrap();
    let pre = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess");
    let files = vec![
        pre.join("rgb_199x257.png"),
        assets().join(digit["file"].as_str().unwrap()),
        tiny.clone(),
        pre.join("gray_64x48.png"),
        pre.join("rgb_199x257.png"),
    ];
    let (ok, got, stderr) = classify(&["--no-resize", "--batch", "2"], &files);
    assert!(!ok, "the tiny image fails: {stderr}");
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), files.len());
    for (i, g) in got.iter().enumerate() {
        if i == 2 {
            let e = g["error"].as_str().unwrap();
            assert!(e.contains("20x20") && e.contains("minimum"), "{e}");
        } else {
            assert_eq!(g["top"].as_array().map(Vec::len), Some(5), "{g}");
        }
    }
    // The 32x32 digit without resizing is the framework's Resize(32) + CenterCrop(32).
    assert_eq!(got[1]["top"][0]["index"].as_u64(), digit["top1"].as_u64());
    // The same image twice (one batch of 2 with itself) gives the same answer.
    assert_eq!(got[0]["top"], got[4]["top"]);
    // And the answers at their own sizes are the network's there: the CPU reference of the
    // lowered graph at 257x199 and at 48x64 (probabilities within 1e-4).
    for i in [0, 3] {
        let img = resnet_wgpu::preprocess::load_image(&files[i]).unwrap();
        let (w, h) = (img.width() as usize, img.height() as usize);
        let pre = resnet_wgpu::preprocess::Preprocess {
            resize: resnet_wgpu::preprocess::Resize::None {
                height: h,
                width: w,
            },
            ..resnet_wgpu::model::Flavour::Torchvision.preprocess()
        };
        let x = pre.apply(&img).unwrap();
        let net = resnet_wgpu::model::load::load_network(
            &assets().join("digits.safetensors"),
            &Default::default(),
        )
        .unwrap();
        let g =
            resnet_wgpu::graph::lower(&net.arch, &net.params, h, w, &Default::default()).unwrap();
        let all =
            resnet_wgpu::cpu::run_graph(&g, 1, &resnet_wgpu::layout::nchw_to_nhwc(&x, 1, 3, h, w));
        let mut probs = all[g.logits].clone().unwrap();
        resnet_wgpu::classifier::softmax(&mut probs);
        for p in got[i]["top"].as_array().unwrap() {
            let class = p["index"].as_u64().unwrap() as usize;
            let (ours, cpu) = (p["probability"].as_f64().unwrap(), f64::from(probs[class]));
            assert!(
                (ours - cpu).abs() <= PROB_TOL * cpu,
                "{}: class {class}: {ours} vs {cpu}",
                files[i].display()
            );
        }
    }
}

#[test]
fn a_device_lost_mid_run_keeps_what_was_classified_and_names_the_rest() {
    let want = expected();
    let files: Vec<PathBuf> = want["images"].as_array().unwrap()[..10]
        .iter()
        .map(|i| assets().join(i["file"].as_str().unwrap()))
        .collect();
    let o = Command::new(env!("CARGO_BIN_EXE_resnet"))
        .env("RESNET_FAILPOINT", "device-lost-after-batches:2")
        .arg("classify")
        .arg("--weights")
        .arg(assets().join("digits.safetensors"))
        .args(["--json", "--batch", "3", "--size", "32", "--resize", "32"])
        .args(&files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("device was lost"), "{stderr}");
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), 10);
    // Two batches of 3 ran before the loss; their results are kept and right.
    for (g, w) in got[..6].iter().zip(want["images"].as_array().unwrap()) {
        assert_matches_framework(g, w);
    }
    for g in &got[6..] {
        assert!(
            g["error"].as_str().unwrap().contains("device was lost"),
            "{g}"
        );
    }
}

#[test]
fn top_zero_is_refused() {
    let want = expected();
    let file = assets().join(want["images"][0]["file"].as_str().unwrap());
    let o = Command::new(env!("CARGO_BIN_EXE_resnet"))
        .arg("classify")
        .arg("--weights")
        .arg(assets().join("digits.safetensors"))
        .args(["--top", "0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--top"));
}

/// Issue 22: a tuning table that avoids the kernel the heuristic picks (what `resnet tune`
/// stores where the register kernel wins every shape) and 7 images in batches of 4. The short
/// last batch runs the tuned kernels as planned: all 7 classified, each the framework's
/// answer, exit 0.
#[test]
fn a_tuning_table_and_a_short_last_batch_classify_every_image() {
    use resnet_wgpu::plan::kernel::ConvVariant;
    use resnet_wgpu::plan::tuning::{Choice, TuningTable, key, to_json};
    let want = expected();
    let images = &want["images"].as_array().unwrap()[..7];
    let files: Vec<PathBuf> = images
        .iter()
        .map(|i| assets().join(i["file"].as_str().unwrap()))
        .collect();
    // The table, written where `resnet tune` writes it for this adapter's own profile.
    let ctx = resnet_wgpu::gpu::GpuContext::new(&Default::default()).unwrap();
    let profile = resnet_wgpu::engine::resolve_profile(&ctx, None).unwrap();
    let device = resnet_wgpu::tune::device_key(&ctx, &profile, Default::default());
    let net = resnet_wgpu::model::load::load_network(
        &assets().join("digits.safetensors"),
        &Default::default(),
    )
    .unwrap();
    let g = resnet_wgpu::graph::lower(&net.arch, &net.params, 32, 32, &Default::default()).unwrap();
    let opts = resnet_wgpu::plan::PlanOptions {
        device: profile,
        ..Default::default()
    };
    let limits = ctx.plan_limits();
    let heuristic = resnet_wgpu::plan::plan_with(&g, 4, &limits, &opts).unwrap();
    let mut table = TuningTable::default();
    let mut avoided = 0;
    for (op, step) in g.ops.iter().zip(&heuristic.steps) {
        if let (resnet_wgpu::graph::Op::Conv(c), Some(p)) = (op, step.conv) {
            avoided += usize::from(p.gemm.variant != ConvVariant::Register);
            let register = Choice {
                variant: ConvVariant::Register,
                tile: None,
                splits: 1,
            };
            table
                .entries
                .insert(key(c, &g.tensors, 4, p.algo), register);
        }
    }
    assert!(
        avoided > 0,
        "the heuristic takes another kernel than register somewhere"
    );
    let cache = std::env::temp_dir().join(format!("resnet-wgpu-tuned-tail-{}", std::process::id()));
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join(format!("{}.json", device.file_stem())),
        to_json(&device, &table),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_resnet"))
        .env("RESNET_CACHE_DIR", &cache)
        .arg("classify")
        .arg("--weights")
        .arg(assets().join("digits.safetensors"))
        .arg("--labels")
        .arg(assets().join("labels.txt"))
        .args(["--json", "--batch", "4", "--size", "32", "--resize", "32"])
        .args(&files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("tuning: {} tuned conv shapes", table.len())),
        "the table was taken: {stderr}"
    );
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), 7);
    for (g, w) in got.iter().zip(images) {
        assert!(g.get("error").is_none_or(|e| e.is_null()), "{g}");
        assert_matches_framework(g, w);
    }
    std::fs::remove_dir_all(&cache).unwrap();
}
