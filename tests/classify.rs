//! `resnet classify` on the committed digits classifier (`assets/digits`, trained with PyTorch
//! by `tools/train_digits.py`): the same top-1 as the framework for every held-out image, the
//! framework's accuracy, and probabilities within 1e-4 (absolute) of the framework's.

use std::path::{Path, PathBuf};
use std::process::Command;

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/digits")
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
    assert_eq!(got.len(), images.len());
    let mut correct = 0;
    for (g, w) in got.iter().zip(images) {
        let top = g["top"].as_array().unwrap_or_else(|| panic!("{g}"));
        let top1 = top[0]["index"].as_u64().unwrap();
        assert_eq!(top1, w["top1"].as_u64().unwrap(), "{}", w["file"]);
        assert_eq!(top[0]["label"].as_str().unwrap(), top1.to_string());
        for (p, q) in top.iter().zip(w["probabilities_top5"].as_array().unwrap()) {
            let (p, q) = (p["probability"].as_f64().unwrap(), q.as_f64().unwrap());
            assert!((p - q).abs() <= 1e-4, "{}: {p} vs {q}", w["file"]);
        }
        correct += usize::from(top1 == w["label"].as_u64().unwrap());
    }
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
                (ours - cpu).abs() <= 1e-4,
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
        assert_eq!(g["top"][0]["index"].as_u64(), w["top1"].as_u64(), "{g}");
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
