//! The frameworks' resampling and cropping, bit for bit where the framework is integer.
//!
//! * [`pillow_resize`]: Pillow's `Image.resize` for `BILINEAR` / `BICUBIC` (ImagingResample,
//!   `src/libImaging/Resample.c`) and `NEAREST` (ImagingScaleAffine, `Geometry.c`). This is what
//!   torchvision, timm and Keras' `load_img` call on PIL images.
//! * [`torchvision_resized_size`] / [`torchvision_crop_offsets`] / [`center_crop`]: the
//!   geometry of `transforms.Resize(int)` + `transforms.CenterCrop`.
//! * [`tf_central_crop_box`] / [`tf_resize_bilinear`]: `tf.image.central_crop` and TF's
//!   float32 bilinear resize kernel (no antialiasing), for TF-slim's inception preprocessing.
//!
//! Images here are interleaved (HWC) RGB.

use super::Filter;
use image::RgbImage;

/// Pillow's `PRECISION_BITS` (32 - 8 - 2): fractional bits of the fixed-point coefficients.
const PRECISION_BITS: u32 = 22;

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Keys' cubic with a = -0.5, written as Pillow writes it (the operation order matters for the
/// last bit of the weights).
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output index: the first source index and the fixed-point weights of its taps.
struct Coeffs {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`, all in f64 as in C: the filter is
/// widened by the downscale factor (antialiasing), taps outside the source are dropped and the
/// rest renormalised by their sequential sum, then each weight becomes
/// `(int)(w * 2^22 ± 0.5)` (truncation toward zero).
fn pillow_coeffs(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    let (kernel, base_support): (fn(f64) -> f64, f64) = match filter {
        Filter::Bilinear => (bilinear_filter, 1.0),
        Filter::Bicubic => (bicubic_filter, 2.0),
        Filter::Nearest => unreachable!("nearest does not convolve"),
    };
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = base_support * filterscale;
    let ss = 1.0 / filterscale;
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's `(int)` truncates toward zero; then clamped to the source.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let w: Vec<f64> = (xmin..xmax)
            .map(|x| kernel((x as f64 - center + 0.5) * ss))
            .collect();
        let mut ww = 0.0;
        for &v in &w {
            ww += v;
        }
        let fixed = w
            .iter()
            .map(|&v| {
                let v = if ww != 0.0 { v / ww } else { v };
                let scaled = v * f64::from(1u32 << PRECISION_BITS);
                if v < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                }
            })
            .collect();
        first.push(xmin as usize);
        weights.push(fixed);
    }
    Coeffs { first, weights }
}

/// Pillow's `clip8`: the accumulator (with its 0.5 rounding term already added) shifted down
/// (arithmetic shift) and clamped to 0..=255.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One separable pass over an HWC u8 buffer with 3 channels. `horizontal`: resample along x.
fn resample_pass(
    src: &[u8],
    (w, h): (usize, usize),
    out_len: usize,
    horizontal: bool,
    filter: Filter,
) -> Vec<u8> {
    let (in_len, (ow, oh)) = if horizontal {
        (w, (out_len, h))
    } else {
        (h, (w, out_len))
    };
    let c = pillow_coeffs(in_len, out_len, filter);
    let mut out = vec![0u8; ow * oh * 3];
    let half = 1i32 << (PRECISION_BITS - 1);
    for y in 0..oh {
        for x in 0..ow {
            let (i, stride, base) = if horizontal {
                (x, 3, y * w * 3)
            } else {
                (y, w * 3, x * 3)
            };
            let k = &c.weights[i];
            let start = base + c.first[i] * stride;
            for ch in 0..3 {
                let mut acc = half;
                for (j, &kj) in k.iter().enumerate() {
                    acc += i32::from(src[start + j * stride + ch]) * kj;
                }
                out[(y * ow + x) * 3 + ch] = clip8(acc);
            }
        }
    }
    out
}

/// Pillow's `NEAREST` source indices: a running f64 sum `x0 = scale / 2; x += scale`, truncated
/// (ImagingScaleAffine). Equals `floor((i + 0.5) * in / out)` up to the sum's rounding.
fn nearest_indices(in_size: usize, out_size: usize) -> Vec<usize> {
    let a = in_size as f64 / out_size as f64;
    let mut xo = a * 0.5;
    (0..out_size)
        .map(|_| {
            // Never out of range for a positive scale; clamped rather than zero-filled.
            let i = (xo as usize).min(in_size - 1);
            xo += a;
            i
        })
        .collect()
}

/// `img.resize((width, height), filter)` as Pillow computes it on an 8-bit RGB image.
///
/// Bilinear / bicubic: separable fixed-point convolution (22 fractional bits), antialiased
/// when downscaling, horizontal pass first, the intermediate rounded and clamped to u8; a pass
/// is skipped when its dimension is unchanged (and an unchanged size returns a copy).
/// Nearest: pure pixel selection from a running f64 sum of `in/out` starting at half of it,
/// truncated (ImagingScaleAffine). Sizes must be non-zero.
pub fn pillow_resize(img: &RgbImage, width: usize, height: usize, filter: Filter) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    assert!(
        w > 0 && h > 0 && width > 0 && height > 0,
        "pillow_resize needs non-empty sizes"
    );
    if (w, h) == (width, height) {
        return img.clone();
    }
    let data: Vec<u8> = match filter {
        Filter::Nearest => {
            let xs = nearest_indices(w, width);
            let ys = nearest_indices(h, height);
            let src = img.as_raw();
            let mut out = Vec::with_capacity(width * height * 3);
            for &y in &ys {
                for &x in &xs {
                    let p = (y * w + x) * 3;
                    out.extend_from_slice(&src[p..p + 3]);
                }
            }
            out
        }
        Filter::Bilinear | Filter::Bicubic => {
            let mut buf = img.as_raw().clone();
            let mut cur_w = w;
            if width != w {
                buf = resample_pass(&buf, (w, h), width, true, filter);
                cur_w = width;
            }
            if height != h {
                buf = resample_pass(&buf, (cur_w, h), height, false, filter);
            }
            buf
        }
    };
    RgbImage::from_raw(width as u32, height as u32, data).expect("buffer size matches")
}

/// torchvision `Resize(size)` with an int: the shorter side becomes `size`, the longer
/// `int(size * long / short)` (Python float division, truncated). Returns `(width, height)`.
pub fn torchvision_resized_size(width: usize, height: usize, size: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = ((size * long) as f64 / short as f64) as usize;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// Python's `round` on a float: halves go to the even neighbour.
fn round_half_even(v: f64) -> i64 {
    let r = v.round(); // halves away from zero
    if (v - v.trunc()).abs() == 0.5 && (r as i64) % 2 != 0 {
        (r - v.signum()) as i64
    } else {
        r as i64
    }
}

/// torchvision `CenterCrop` offsets `(left, top)`: `int(round((size - crop) / 2.0))` with
/// Python's round-half-to-even (a 9-pixel margin gives 4, an 79-pixel one 40). The image must
/// be at least the crop's size (see [`center_crop`] for the padding).
pub fn torchvision_crop_offsets(
    width: usize,
    height: usize,
    crop_w: usize,
    crop_h: usize,
) -> (usize, usize) {
    let off = |size: usize, crop: usize| round_half_even((size - crop) as f64 / 2.0) as usize;
    (off(width, crop_w), off(height, crop_h))
}

/// torchvision `CenterCrop((crop_h, crop_w))` on a PIL image: an image smaller than the crop is
/// first zero-padded (left/top `(crop - size) // 2`, the rest right/bottom), then cropped at
/// [`torchvision_crop_offsets`].
pub fn center_crop(img: &RgbImage, crop_w: usize, crop_h: usize) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let pad_l = crop_w.saturating_sub(w) / 2;
    let pad_t = crop_h.saturating_sub(h) / 2;
    let (pw, ph) = (w.max(crop_w), h.max(crop_h));
    let (left, top) = torchvision_crop_offsets(pw, ph, crop_w, crop_h);
    let src = img.as_raw();
    let mut out = vec![0u8; crop_w * crop_h * 3];
    for y in 0..crop_h {
        // Coordinates in the padded image, then in the source.
        let Some(sy) = (y + top).checked_sub(pad_t).filter(|&sy| sy < h) else {
            continue;
        };
        for x in 0..crop_w {
            let Some(sx) = (x + left).checked_sub(pad_l).filter(|&sx| sx < w) else {
                continue;
            };
            let (d, s) = ((y * crop_w + x) * 3, (sy * w + sx) * 3);
            out[d..d + 3].copy_from_slice(&src[s..s + 3]);
        }
    }
    RgbImage::from_raw(crop_w as u32, crop_h as u32, out).expect("buffer size matches")
}

/// transformers' `center_crop` (`image_transforms.center_crop`, NumPy): the crop starts at
/// `(size - crop) // 2` (floor: a 9-pixel margin gives 4 where torchvision gives 4 too, but a
/// 79-pixel one 39 where torchvision rounds to 40); an image smaller than the crop is
/// zero-padded with `ceil(margin / 2)` before.
pub fn hf_center_crop(img: &RgbImage, crop_w: usize, crop_h: usize) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    // Per axis: (first source index, first destination index).
    let start = |size: usize, crop: usize| {
        if size >= crop {
            ((size - crop) / 2, 0)
        } else {
            (0, (crop - size).div_ceil(2))
        }
    };
    let ((sx0, dx0), (sy0, dy0)) = (start(w, crop_w), start(h, crop_h));
    let src = img.as_raw();
    let mut out = vec![0u8; crop_w * crop_h * 3];
    for y in dy0..crop_h {
        let sy = sy0 + y - dy0;
        if sy >= h {
            break;
        }
        let cols = (crop_w - dx0).min(w - sx0);
        let (d, s) = ((y * crop_w + dx0) * 3, (sy * w + sx0) * 3);
        out[d..d + cols * 3].copy_from_slice(&src[s..s + cols * 3]);
    }
    RgbImage::from_raw(crop_w as u32, crop_h as u32, out).expect("buffer size matches")
}

/// `tf.image.central_crop(image, fraction)` on one side of length `size`: `(start, length)` with
/// `start = int((size - size * fraction) / 2)` (in f64) and `length = size - 2 * start`.
/// `fraction` must lie in (0, 1]; 1 keeps the whole side.
pub fn tf_central_crop_box(size: usize, fraction: f64) -> (usize, usize) {
    if fraction >= 1.0 {
        return (0, size);
    }
    let s = size as f64;
    let start = ((s - s * fraction) / 2.0) as usize;
    (start, size - 2 * start)
}

/// TF's CPU `ResizeBilinear` kernel on a float32 HWC image with `channels` channels, no
/// antialiasing, `align_corners=False`.
///
/// `half_pixel_centers = false` is TF1's `tf.image.resize_bilinear` / `tf.compat.v1` default
/// (what TF-slim's `inception_preprocessing` calls): source `= x * in/out`.
/// `half_pixel_centers = true` is TF2's `tf.image.resize(method="bilinear")`: source
/// `= (x + 0.5) * in/out - 0.5`. Either way, in f32 as TF does: `lower = max(floor(s), 0)`,
/// `upper = min(ceil(s), in - 1)`, `lerp = s - floor(s)`, then
/// `top + (bottom - top) * y_lerp` of the two horizontal lerps.
pub fn tf_resize_bilinear(
    src: &[f32],
    (w, h, channels): (usize, usize, usize),
    out_w: usize,
    out_h: usize,
    half_pixel_centers: bool,
) -> Vec<f32> {
    struct Tap {
        lower: usize,
        upper: usize,
        lerp: f32,
    }
    let taps = |in_size: usize, out_size: usize| -> Vec<Tap> {
        let scale = in_size as f32 / out_size as f32;
        (0..out_size)
            .map(|i| {
                let s = if half_pixel_centers {
                    (i as f32 + 0.5) * scale - 0.5
                } else {
                    i as f32 * scale
                };
                let f = s.floor();
                Tap {
                    lower: (f as i64).max(0) as usize,
                    upper: (s.ceil() as i64).min(in_size as i64 - 1) as usize,
                    lerp: s - f,
                }
            })
            .collect()
    };
    let xs = taps(w, out_w);
    let ys = taps(h, out_h);
    let mut out = Vec::with_capacity(out_w * out_h * channels);
    for ty in &ys {
        let (r0, r1) = (ty.lower * w, ty.upper * w);
        for tx in &xs {
            for c in 0..channels {
                let at = |row: usize, col: usize| src[(row + col) * channels + c];
                let tl = at(r0, tx.lower);
                let tr = at(r0, tx.upper);
                let bl = at(r1, tx.lower);
                let br = at(r1, tx.upper);
                let top = tl + (tr - tl) * tx.lerp;
                let bottom = bl + (br - bl) * tx.lerp;
                out.push(top + (bottom - top) * ty.lerp);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_round_is_half_even() {
        assert_eq!(round_half_even(4.5), 4);
        assert_eq!(round_half_even(39.5), 40);
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
        assert_eq!(round_half_even(2.4), 2);
        assert_eq!(round_half_even(2.6), 3);
        assert_eq!(round_half_even(-0.5), 0);
        assert_eq!(round_half_even(-1.5), -2);
    }

    #[test]
    fn torchvision_geometry() {
        assert_eq!(torchvision_resized_size(300, 200, 256), (384, 256));
        assert_eq!(torchvision_resized_size(199, 257, 235), (235, 303));
        assert_eq!(torchvision_resized_size(199, 257, 32), (32, 41));
        assert_eq!(torchvision_resized_size(64, 48, 32), (42, 32));
        assert_eq!(torchvision_crop_offsets(384, 256, 224, 224), (80, 16));
        assert_eq!(torchvision_crop_offsets(235, 303, 224, 224), (6, 40));
        assert_eq!(torchvision_crop_offsets(32, 41, 32, 32), (0, 4)); // 4.5 -> 4
        assert_eq!(torchvision_crop_offsets(42, 32, 32, 32), (5, 0));
    }

    #[test]
    fn fixed_point_weights_sum_to_one() {
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            for (i, o) in [(300, 384), (384, 300), (7, 3), (3, 7), (257, 41)] {
                let c = pillow_coeffs(i, o, filter);
                for k in &c.weights {
                    let s: i32 = k.iter().sum();
                    assert!((s - (1 << PRECISION_BITS)).abs() <= k.len() as i32);
                }
            }
        }
    }

    #[test]
    fn nearest_matches_integer_formula() {
        for (i, o) in [(300, 224), (199, 224), (257, 224), (64, 5), (5, 64)] {
            let want: Vec<usize> = (0..o).map(|x| (2 * x + 1) * i / (2 * o)).collect();
            assert_eq!(nearest_indices(i, o), want);
        }
    }
}
