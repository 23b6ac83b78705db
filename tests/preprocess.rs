//! Preprocessing against the frameworks' own outputs (no GPU).
//!
//! `tests/fixtures/preprocess/expected.safetensors` holds what torchvision, timm and Keras
//! returned for the fixture images (made by `tools/gen_preprocess_fixtures.py`; every rule is
//! spelled out in `rules.json`) and `<img>/decoded_rgb`, Pillow's `convert("RGB")` of each
//! image whose decode is not trivial.
//!
//! Tolerances:
//! * Resize + crop + normalise, starting from Pillow's decoded pixels: [`TOL`] = 1e-5 absolute
//!   on normalised values. Our resampling is a bit-exact port of Pillow's fixed-point code and
//!   the normalisation uses the frameworks' f32 operations, so the measured error is 0; a
//!   single 8-bit level would be >= 1/255/0.229 = 0.017.
//! * PNG decoding (8/16-bit grey, RGBA, 16-bit RGB): exact.
//! * JPEG decoding: `image` (zune-jpeg) vs Pillow's libjpeg-turbo on the 4:2:0 fixture differ
//!   in chroma upsampling. Measured: max 15 levels, mean 0.31 levels, 21% of samples differ;
//!   bounds [`JPEG_MAX_LEVELS`] / [`JPEG_MEAN_LEVELS`].

mod common;

use image::RgbImage;
use resnet_wgpu::Error;
use resnet_wgpu::model::Flavour;
use resnet_wgpu::preprocess::resize::{pillow_resize, tf_resize_bilinear};
use resnet_wgpu::preprocess::{Alpha, Filter, Preprocess, Resize, decode_image, load_image};
use resnet_wgpu::tensor_file::{f32_data, parse, read_file};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Normalised values, framework vs ours, from the same decoded pixels.
const TOL: f32 = 1e-5;
/// JPEG decode, per sample, in 8-bit levels (measured 15).
const JPEG_MAX_LEVELS: u8 = 16;
/// JPEG decode, mean absolute difference in levels (measured 0.31).
const JPEG_MEAN_LEVELS: f64 = 0.4;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
}

enum Fixture {
    F32 { shape: Vec<usize>, data: Vec<f32> },
    U8 { shape: Vec<usize>, data: Vec<u8> },
}

fn fixtures() -> BTreeMap<String, Fixture> {
    let path = dir().join("expected.safetensors");
    let bytes = read_file(&path).unwrap();
    let st = parse(&path, &bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let shape = view.shape().to_vec();
            let f = match view.dtype() {
                Dtype::F32 => Fixture::F32 {
                    shape,
                    data: f32_data(&name, &view).unwrap(),
                },
                Dtype::U8 => Fixture::U8 {
                    shape,
                    data: view.data().to_vec(),
                },
                d => panic!("{name}: unexpected dtype {d:?}"),
            };
            (name, f)
        })
        .collect()
}

/// `<img>/decoded_rgb` (HWC u8) as an image.
fn decoded_rgb(all: &BTreeMap<String, Fixture>, img: &str) -> Option<RgbImage> {
    match all.get(&format!("{img}/decoded_rgb"))? {
        Fixture::U8 { shape, data } => {
            assert_eq!(shape.len(), 3);
            assert_eq!(shape[2], 3);
            RgbImage::from_raw(shape[1] as u32, shape[0] as u32, data.clone())
        }
        Fixture::F32 { .. } => panic!("{img}/decoded_rgb is not uint8"),
    }
}

/// The recipe that reproduces fixture rule `rule` on an image of `w x h`.
fn recipe(rule: &str, w: usize, h: usize) -> Preprocess {
    let no_resize = |f: Flavour| Preprocess {
        resize: Resize::None {
            height: h,
            width: w,
        },
        ..f.preprocess()
    };
    match rule {
        "torchvision" => Flavour::Torchvision.preprocess(),
        "torchvision_32" => {
            Flavour::Torchvision
                .preprocess()
                .with_overrides(Some(32), Some(32), false)
        }
        "timm_v2" => Flavour::TimmV2.preprocess(),
        "keras_v2" => Flavour::KerasV2.preprocess(),
        "keras_v1" => Flavour::KerasV1.preprocess(),
        "keras_v2_noresize" => no_resize(Flavour::KerasV2),
        "keras_v1_noresize" => no_resize(Flavour::KerasV1),
        other => panic!("fixture rule `{other}` has no recipe here; add one"),
    }
}

/// NaN-aware (`tests/common`): a NaN, an infinity or a length mismatch fails the test.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    common::abs_err(a, b).unwrap_or_else(|e| panic!("{e}")) as f32
}

#[test]
fn every_framework_tensor_matches() {
    let all = fixtures();
    let mut checked = 0;
    let mut worst = 0f32;
    for (name, fx) in &all {
        let Fixture::F32 { shape, data } = fx else {
            continue;
        };
        let (img_name, rule) = name.rsplit_once('/').unwrap();
        let is_jpeg = img_name.ends_with(".jpg");
        let from_file = load_image(&dir().join(img_name)).unwrap();
        // Resizing starts from Pillow's pixels where the fixture has them, separating the
        // resize from the decoder (JPEG decoders differ; see jpeg_decoding_*).
        let input = decoded_rgb(&all, img_name).unwrap_or_else(|| {
            assert!(!is_jpeg, "{img_name}: JPEG fixtures need decoded_rgb");
            from_file.clone()
        });
        let p = recipe(rule, input.width() as usize, input.height() as usize);
        let (oh, ow) = p.output_size();
        assert_eq!(shape, &[3, oh, ow], "{name}: shape");
        let ours = p.apply(&input).unwrap();
        let err = max_abs_diff(&ours, data);
        println!("{name}: max |ours - framework| = {err:e}");
        assert!(err <= TOL, "{name}: max abs diff {err} > {TOL}");
        worst = worst.max(err);

        // The whole path from the file: exact for PNG, JPEG within its decoder's difference.
        let end_to_end = max_abs_diff(&p.apply(&from_file).unwrap(), data);
        if is_jpeg {
            // 16 levels through 1/255/std (std >= 0.225 here, 1 for keras_v1).
            let min_std = p.std.iter().copied().fold(f32::MAX, f32::min);
            let bound = f32::from(JPEG_MAX_LEVELS) * p.scale / min_std;
            println!("{name}: from the JPEG file (image crate decoder): max {end_to_end:e}");
            assert!(end_to_end <= bound, "{name}: {end_to_end} > {bound}");
        } else {
            assert!(end_to_end <= TOL, "{name}: from file {end_to_end}");
        }
        checked += 1;
    }
    println!("{checked} framework tensors, worst max abs diff {worst:e}");
    assert_eq!(
        checked, 14,
        "every rule tensor in expected.safetensors is checked"
    );
}

#[test]
fn png_decoding_matches_pillow_exactly() {
    let all = fixtures();
    let mut n = 0;
    for img in [
        "gray_64x48.png",
        "rgba_120x90.png",
        "gray16_80x60.png",
        "rgb16_80x60.png",
    ] {
        let want = decoded_rgb(&all, img).expect("fixture has decoded_rgb");
        let got = load_image(&dir().join(img)).unwrap();
        assert_eq!(got.dimensions(), want.dimensions(), "{img}");
        let diff = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(diff, 0, "{img}: {diff} samples differ from Pillow");
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn jpeg_decoding_within_measured_tolerance() {
    let all = fixtures();
    let img = "rgb_300x200.jpg";
    let want = decoded_rgb(&all, img).unwrap();
    let got = load_image(&dir().join(img)).unwrap();
    assert_eq!(got.dimensions(), want.dimensions());
    let (mut max, mut sum, mut differ) = (0u8, 0u64, 0usize);
    for (a, b) in got.as_raw().iter().zip(want.as_raw()) {
        let d = a.abs_diff(*b);
        max = max.max(d);
        sum += u64::from(d);
        differ += usize::from(d != 0);
    }
    let n = got.as_raw().len();
    let mean = sum as f64 / n as f64;
    println!(
        "{img}: image-crate vs Pillow/libjpeg-turbo: max {max} levels, mean {mean:.3}, {:.1}% of samples differ",
        100.0 * differ as f64 / n as f64
    );
    assert!(max <= JPEG_MAX_LEVELS, "max {max}");
    assert!(mean <= JPEG_MEAN_LEVELS, "mean {mean}");
}

// ---------------------------------------------------------------------------------------------
// Decoding errors and conversions
// ---------------------------------------------------------------------------------------------

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("preprocess");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expect_image_error(path: &Path) {
    match load_image(path) {
        Err(e @ Error::Image { .. }) => {
            let msg = e.to_string();
            let file = path.file_name().unwrap().to_str().unwrap();
            assert!(msg.contains(file), "`{msg}` does not name {file}");
            println!("{msg}");
        }
        Err(e) => panic!("{}: wrong error kind: {e}", path.display()),
        Ok(_) => panic!("{} decoded", path.display()),
    }
}

#[test]
fn bad_files_are_clean_errors_naming_the_file() {
    expect_image_error(&tmp("notes.png", b"this is a text file, not a picture\n"));
    expect_image_error(&tmp("empty.jpg", b""));
    let png = std::fs::read(dir().join("rgb_199x257.png")).unwrap();
    expect_image_error(&tmp("truncated.png", &png[..png.len() / 2]));
    expect_image_error(&tmp("header_only.png", &png[..40]));
    let jpg = std::fs::read(dir().join("rgb_300x200.jpg")).unwrap();
    // Cut inside the headers, and inside the scan (zune-jpeg alone would pad that with grey;
    // Pillow raises "image file is truncated").
    expect_image_error(&tmp("truncated_header.jpg", &jpg[..100]));
    expect_image_error(&tmp("truncated.jpg", &jpg[..jpg.len() / 2]));
    expect_image_error(&tmp("truncated_end.jpg", &jpg[..jpg.len() - 2]));
    let mut garbage = b"\x89PNG\r\n\x1a\n".to_vec();
    garbage.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    expect_image_error(&tmp("garbage.png", &garbage));

    let missing = dir().join("no_such_image.png");
    match load_image(&missing) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("no_such_image.png")),
        other => panic!("missing file: {other:?}"),
    }
    let e = decode_image(b"GIF89a", "upload #3").unwrap_err();
    assert!(e.to_string().contains("upload #3"), "{e}");
}

/// A minimal PNG encoder (stored deflate blocks), for bit depths/colour types the fixtures
/// do not cover.
fn png(width: u32, height: u32, bit_depth: u8, color_type: u8, raw: &[u8], trns: &[u8]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, tag: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut td = tag.to_vec();
        td.extend_from_slice(data);
        out.extend_from_slice(&td);
        out.extend(crc32(&td).to_be_bytes());
    }
    let row = raw.len() / height as usize;
    let mut filtered = Vec::new();
    for r in raw.chunks(row) {
        filtered.push(0u8);
        filtered.extend_from_slice(r);
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = filtered.chunks(65535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend((b.len() as u16).to_le_bytes());
        z.extend((!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &filtered {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([bit_depth, color_type, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    if !trns.is_empty() {
        chunk(&mut out, b"tRNS", trns);
    }
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn sixteen_bit_and_alpha_variants_convert_like_pillow() {
    let v16: [u16; 4] = [0x0010, 0x00FF, 0x0100, 0xABCD];
    let be: Vec<u8> = v16.iter().flat_map(|v| v.to_be_bytes()).collect();
    // 16-bit grey (Pillow I;16): clipped to 255, also with a tRNS chunk.
    for trns in [&[][..], &[0x00, 0x10][..]] {
        let img = decode_image(&png(4, 1, 16, 0, &be, trns), "g16.png").unwrap();
        let want: Vec<u8> = [0x10, 0xFF, 0xFF, 0xFF]
            .iter()
            .flat_map(|&v| [v, v, v])
            .collect();
        assert_eq!(img.as_raw(), &want, "tRNS {trns:?}");
    }
    // 16-bit grey + alpha (Pillow LA): high byte.
    let la: Vec<u8> = v16
        .iter()
        .flat_map(|v| [v.to_be_bytes(), [0x12, 0x34]])
        .flatten()
        .collect();
    let img = decode_image(&png(4, 1, 16, 4, &la, &[]), "la16.png").unwrap();
    let want: Vec<u8> = [0x00, 0x00, 0x01, 0xAB]
        .iter()
        .flat_map(|&v| [v, v, v])
        .collect();
    assert_eq!(img.as_raw(), &want);
    // 16-bit RGBA: high byte, alpha dropped.
    let rgba: Vec<u8> = [0x01FF_u16, 0x80FF, 0xFFFF, 0x0000]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let img = decode_image(&png(1, 1, 16, 6, &rgba, &[]), "rgba16.png").unwrap();
    assert_eq!(img.as_raw(), &[0x01, 0x80, 0xFF]);
    // 8-bit grey + alpha: alpha dropped, no compositing.
    let img = decode_image(&png(2, 1, 8, 4, &[7, 0, 200, 128], &[]), "la8.png").unwrap();
    assert_eq!(img.as_raw(), &[7, 7, 7, 200, 200, 200]);
    // 2-bit grey: scaled to 0..255 (Pillow L;2: v * 85).
    let img = decode_image(&png(4, 1, 2, 0, &[0b00_01_10_11], &[]), "g2.png").unwrap();
    assert_eq!(
        img.as_raw(),
        &[0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255]
    );
}

#[test]
fn bmp_and_webp_round_trip() {
    let img = RgbImage::from_fn(13, 7, |x, y| {
        image::Rgb([(x * 19) as u8, (y * 31) as u8, 77])
    });
    for format in [image::ImageFormat::Bmp, image::ImageFormat::WebP] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, format).unwrap();
        let back = decode_image(bytes.get_ref(), "x").unwrap();
        assert_eq!(back, img, "{format:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------------------------

#[test]
fn no_resize_requires_the_exact_size() {
    let p = Flavour::KerasV2
        .preprocess()
        .with_overrides(None, None, true);
    assert_eq!(
        p.resize,
        Resize::None {
            height: 224,
            width: 224
        }
    );
    let img = RgbImage::new(224, 200);
    let e = p.apply(&img).unwrap_err();
    assert!(matches!(e, Error::Input(_)), "{e}");
    assert!(e.to_string().contains("224x200"), "{e}");
    assert_eq!(
        p.apply(&RgbImage::new(224, 224)).unwrap().len(),
        3 * 224 * 224
    );
    let p = p.with_overrides(Some(32), None, true);
    assert!(p.apply(&RgbImage::new(224, 224)).is_err());
    assert_eq!(p.apply(&RgbImage::new(32, 32)).unwrap().len(), 3 * 32 * 32);
}

#[test]
fn flavour_recipes_and_overrides() {
    let out = |f: Flavour| f.preprocess().output_size();
    assert_eq!(out(Flavour::Torchvision), (224, 224));
    assert_eq!(out(Flavour::TimmV2), (224, 224));
    assert_eq!(out(Flavour::KerasV1), (224, 224));
    assert_eq!(out(Flavour::KerasV2), (224, 224));
    assert_eq!(out(Flavour::SlimV2), (299, 299));

    let tv = Flavour::Torchvision.preprocess();
    let shorter = |resize, crop, filter| Resize::ShorterThenCrop {
        resize,
        crop,
        filter,
    };
    assert_eq!(
        tv.with_overrides(Some(299), None, false).resize,
        shorter(341, 299, Filter::Bilinear) // floor(299 / 0.875)
    );
    assert_eq!(
        tv.with_overrides(None, Some(232), false).resize,
        shorter(232, 224, Filter::Bilinear) // IMAGENET1K_V2 weights
    );
    let keras = Flavour::KerasV2.preprocess();
    assert_eq!(
        keras.with_overrides(Some(160), None, false).resize,
        Resize::Squash {
            height: 160,
            width: 160,
            filter: Filter::Nearest
        }
    );
    assert_eq!(
        keras.with_overrides(None, Some(256), false).resize,
        shorter(256, 224, Filter::Nearest)
    );
    let slim = Flavour::SlimV2.preprocess();
    assert_eq!(
        slim.with_overrides(Some(224), None, false).resize,
        Resize::CentralCropThenResize {
            fraction: 0.875,
            size: 224
        }
    );
    assert_eq!(
        slim.with_overrides(Some(224), Some(256), false).resize,
        shorter(256, 224, Filter::Bilinear)
    );
    assert_eq!(
        slim.with_overrides(None, None, true).resize,
        Resize::None {
            height: 299,
            width: 299
        }
    );
}

#[test]
fn bgr_and_caffe_means() {
    let img = RgbImage::from_pixel(2, 1, image::Rgb([10, 20, 30]));
    let p = Preprocess {
        resize: Resize::None {
            height: 1,
            width: 2,
        },
        ..Flavour::KerasV1.preprocess()
    };
    let x = p.apply(&img).unwrap();
    // CHW, channel 0 = blue.
    let want = [
        30.0 - 103.939f32,
        30.0 - 103.939,
        20.0 - 116.779,
        20.0 - 116.779,
        10.0 - 123.68,
        10.0 - 123.68,
    ];
    assert_eq!(x, want);
}

/// A torchvision crop larger than the resized image is zero-padded first (torchvision pads
/// left/top `(crop - size) // 2`), so padding normalises to `-mean / std`.
#[test]
fn crop_larger_than_image_pads_with_zero() {
    let img = RgbImage::from_pixel(4, 4, image::Rgb([255, 255, 255]));
    let p = Preprocess {
        resize: Resize::ShorterThenCrop {
            resize: 4,
            crop: 7,
            filter: Filter::Bilinear,
        },
        scale: 1.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        bgr: false,
        alpha: Alpha::Drop,
    };
    let x = p.apply(&img).unwrap();
    // pad 1 left/top, 2 right/bottom.
    let row = |y: usize| &x[y * 7..y * 7 + 7];
    assert_eq!(row(0), &[0.0; 7]);
    for y in 1..5 {
        assert_eq!(row(y), &[0.0, 255.0, 255.0, 255.0, 255.0, 0.0, 0.0]);
    }
    assert_eq!(row(5), &[0.0; 7]);
}

#[test]
fn pillow_resize_of_a_constant_is_constant() {
    let img = RgbImage::from_pixel(37, 23, image::Rgb([200, 3, 128]));
    for filter in [Filter::Nearest, Filter::Bilinear, Filter::Bicubic] {
        for (w, h) in [(5, 9), (80, 40), (37, 11), (11, 23)] {
            let r = pillow_resize(&img, w, h, filter);
            assert!(
                r.pixels().all(|p| p.0 == [200, 3, 128]),
                "{filter:?} {w}x{h}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TF-slim: central crop + TF bilinear, hand-computed
// ---------------------------------------------------------------------------------------------

/// `CentralCropThenResize` on an 8x8 ramp `v(x, y) = 10x + y` (identical in R, G, B) with
/// fraction 0.5 and size 2, scale 1, mean 0, std 1 (so the output is the resized value):
///
/// * `tf.image.central_crop`: start = int((8 - 8 * 0.5) / 2) = 2, length 8 - 2*2 = 4, i.e.
///   columns/rows 2..6 with values 10x + y for x, y in 2..6.
/// * slim's `resize_bilinear(align_corners=False)` (TF1, no half-pixel centres), 4 -> 2:
///   scale 2, source = 2i: 0 and 2 in crop coordinates, integers, so lerp = 0: the output
///   picks crop pixels (0,0), (2,0), (0,2), (2,2) = image (2,2), (4,2), (2,4), (4,4):
///   22, 42 / 24, 44.
/// * TF2 half-pixel centres would give source = (i + 0.5) * 2 - 0.5 = 0.5, 2.5: the mean of
///   two neighbours per axis, i.e. the ramp at crop (0.5, 0.5) etc.: 27.5, 47.5 / 29.5, 49.5
///   (checked on `tf_resize_bilinear` directly).
#[test]
fn slim_central_crop_then_tf_bilinear_by_hand() {
    let img = RgbImage::from_fn(8, 8, |x, y| {
        let v = (10 * x + y) as u8;
        image::Rgb([v, v, v])
    });
    let p = Preprocess {
        resize: Resize::CentralCropThenResize {
            fraction: 0.5,
            size: 2,
        },
        scale: 1.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        bgr: false,
        alpha: Alpha::Drop,
    };
    let x = p.apply(&img).unwrap();
    let plane = [22.0, 42.0, 24.0, 44.0];
    assert_eq!(x, [plane, plane, plane].concat());

    // The crop on floats, then the half-pixel variant.
    let crop: Vec<f32> = (2..6)
        .flat_map(|y| (2..6).map(move |x| (10 * x + y) as f32))
        .collect();
    assert_eq!(
        tf_resize_bilinear(&crop, (4, 4, 1), 2, 2, true),
        [27.5, 47.5, 29.5, 49.5]
    );
    assert_eq!(tf_resize_bilinear(&crop, (4, 4, 1), 2, 2, false), plane);
}

/// Upscaling a 2x2 image [[0, 100], [200, 40]] to 4x4 exercises the edge clamping:
///
/// * legacy (slim): source = i * 0.5 = 0, 0.5, 1, 1.5 -> (lower, upper, lerp) = (0,0,0),
///   (0,1,.5), (1,1,0), (1,1,.5) [upper clamped to 1]: top row 0, 50, 100, 100; row 1 (y = .5)
///   is the mean of the two rows: 100, 85, 70, 70; rows 2 and 3 = the bottom row
///   200, 120, 40, 40.
/// * half-pixel: source = (i + .5) * .5 - .5 = -.25, .25, .75, 1.25 -> (0,0), (0,1,.25),
///   (0,1,.75), (1,1): top row 0, 25, 75, 100; bottom row 200, 160, 80, 40; rows 1 and 2 are
///   .25 and .75 of the way: 50, 58.75, 76.25, 85 and 150, 126.25, 78.75, 55.
#[test]
fn tf_bilinear_upscale_by_hand() {
    let src = [0.0, 100.0, 200.0, 40.0];
    assert_eq!(
        tf_resize_bilinear(&src, (2, 2, 1), 4, 4, false),
        [
            0.0, 50.0, 100.0, 100.0, //
            100.0, 85.0, 70.0, 70.0, //
            200.0, 120.0, 40.0, 40.0, //
            200.0, 120.0, 40.0, 40.0,
        ]
    );
    assert_eq!(
        tf_resize_bilinear(&src, (2, 2, 1), 4, 4, true),
        [
            0.0, 25.0, 75.0, 100.0, //
            50.0, 58.75, 76.25, 85.0, //
            150.0, 126.25, 78.75, 55.0, //
            200.0, 160.0, 80.0, 40.0,
        ]
    );
}

/// slim's defaults on a realistic size: 0.875 of 400x300 is start (25, 18), 350x264, and the
/// output is in [-1, 1].
#[test]
fn slim_defaults() {
    use resnet_wgpu::preprocess::resize::tf_central_crop_box;
    assert_eq!(tf_central_crop_box(400, 0.875), (25, 350));
    assert_eq!(tf_central_crop_box(300, 0.875), (18, 264));
    let img = RgbImage::from_fn(400, 300, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 255])
    });
    let x = Flavour::SlimV2.preprocess().apply(&img).unwrap();
    assert_eq!(x.len(), 3 * 299 * 299);
    assert!(x.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert!(x[2 * 299 * 299..].iter().all(|&v| v == 1.0));
}

/// An extreme aspect ratio or size is refused before anything that big is allocated: a 1x100000
/// strip resized to a shorter side of 256 would be 256x25600000 (18 GiB).
#[test]
fn resizing_to_an_absurd_size_is_an_error_not_an_allocation() {
    let strip = RgbImage::new(1, 100_000);
    let e = Flavour::Torchvision.preprocess().apply(&strip).unwrap_err();
    assert!(
        e.to_string().contains("256x25600000") && e.to_string().contains("MiB"),
        "{e}"
    );
    let img = RgbImage::new(64, 48);
    for (size, resize) in [(Some(100_000), None), (None, Some(usize::MAX / 2))] {
        let p = Flavour::Torchvision
            .preprocess()
            .with_overrides(size, resize, false);
        assert!(p.apply(&img).is_err(), "{size:?} {resize:?}");
    }
}

/// The HWC form the classify path feeds the session is the CHW form transposed, bit for bit,
/// for every recipe (each flavour's, slim's central crop included), RGB and BGR.
#[test]
fn hwc_output_is_the_chw_output_transposed() {
    let img = RgbImage::from_fn(53, 41, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
    });
    let mut checked = 0;
    for flavour in Flavour::ALL {
        let p = flavour.preprocess();
        let chw = p.apply(&img).unwrap();
        let hwc = p.apply_hwc(&img).unwrap();
        let (h, w) = p.output_size();
        let want = resnet_wgpu::layout::nchw_to_nhwc(&chw, 1, 3, h, w);
        assert_eq!(hwc.len(), want.len(), "{flavour}");
        assert!(
            hwc.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{flavour}: HWC differs from CHW transposed"
        );
        checked += 1;
    }
    assert_eq!(checked, Flavour::ALL.len());
}
