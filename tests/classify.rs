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
        .args(["--json", "--batch", "64"])
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
