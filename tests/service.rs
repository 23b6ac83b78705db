//! The classify service ([`resnet_wgpu::classify`]): a mixed list of sources comes back one
//! outcome per source, in input order, the bad ones with their own error.

mod common;

use resnet_wgpu::classify::{ClassifyOptions, Sizing, Source, classify_sources};
use resnet_wgpu::labels::Labels;
use resnet_wgpu::{ClassifierOptions, ErrorKind, Model};
use std::path::{Path, PathBuf};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/digits")
}

#[test]
fn a_mixed_list_comes_back_per_source_in_order() {
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(assets().join("expected.json")).unwrap())
            .unwrap();
    let digits: Vec<&serde_json::Value> = want["images"].as_array().unwrap()[..5].iter().collect();
    let digit = |i: usize| assets().join(digits[i]["file"].as_str().unwrap());
    let model = Model::load(assets().join("digits.safetensors")).unwrap();
    let ctx = common::gpu();
    let labels = Labels::from_file(&assets().join("labels.txt"), model.classes()).unwrap();
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(20, 20, image::Rgb([9, 9, 9])))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let sources = vec![
        Source::Path(digit(0)),
        Source::Path(assets().join("labels.txt")), // not an image
        Source::Bytes {
            name: "digit 1 (bytes)".into(),
            bytes: std::fs::read(digit(1)).unwrap(),
        },
        Source::Bytes {
            name: "tiny (bytes)".into(), // 20x20: too small for the net at its own size
            bytes: png,
        },
        Source::Image {
            name: "digit 2 (pixels)".into(),
            image: image::open(digit(2)).unwrap(),
        },
        Source::Path(digit(3)),
        Source::Path(digit(4)),
    ];
    let options = ClassifierOptions {
        max_batch: 2,
        labels: Some(labels),
        ..Default::default()
    };
    let opts = ClassifyOptions {
        top: 3,
        sizing: Sizing::Own,
        ..Default::default()
    };
    let report = classify_sources(&model, &ctx, &options, sources, &opts).unwrap();
    assert!(report.stopped.is_none());
    let o = &report.outcomes;
    assert_eq!(o.len(), 7);
    let names: Vec<&str> = o.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names[2..5],
        ["digit 1 (bytes)", "tiny (bytes)", "digit 2 (pixels)"]
    );
    assert_eq!(names[1], assets().join("labels.txt").display().to_string());
    for (at, digit) in [(0, 0), (2, 1), (4, 2), (5, 3), (6, 4)] {
        let top = o[at]
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", o[at].name));
        assert_eq!(top.len(), 3);
        assert_eq!(
            top[0].index as u64,
            digits[digit]["top1"].as_u64().unwrap(),
            "{}",
            o[at].name
        );
    }
    let bad = o[1].result.as_ref().unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::Input, "{bad}");
    assert!(bad.to_string().contains("labels.txt"), "{bad}");
    let tiny = o[3].result.as_ref().unwrap_err();
    assert!(tiny.to_string().contains("20"), "{tiny}");
    assert_eq!(report.failed(), 2);

    // Fail fast: the bad file's own error, nothing run.
    let e = classify_sources(
        &model,
        &ctx,
        &options,
        [
            Source::Path(digit(0)),
            Source::Path(assets().join("labels.txt")),
        ],
        &ClassifyOptions {
            fail_fast: true,
            ..opts
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("labels.txt"), "{e}");
}
