//! From an image file to the network's input tensor, exactly as each flavour's framework does
//! it in evaluation (see `docs/models.md`, "Preprocessing", `tests/fixtures/preprocess/rules.json`
//! and `hf_rules.json`). Each flavour's recipe lives with the flavour (`model/flavour/`);
//! transformers checkpoints bring theirs in `preprocessor_config.json`.
//!
//! [`load_image`] decodes like `PIL.Image.open(p).convert("RGB")`; [`Preprocess::apply`]
//! resizes/crops ([`Resize`]) and normalises to CHW float32:
//!
//! | flavour | resize | normalise |
//! |---|---|---|
//! | torchvision | shorter side 256 (Pillow bilinear, antialiased), centre crop 224 | `(x/255 - mean) / std`, ImageNet mean/std |
//! | timm-v2 | shorter side 235 = floor(224 / 0.95) (Pillow bicubic), centre crop 224 | `(x/255 - 0.5) / 0.5` |
//! | keras-v2 | squash to 224x224 (Pillow nearest, `load_img`) | `x/127.5 - 1` |
//! | keras-v1 | squash to 224x224 (Pillow nearest) | BGR, `x - (103.939, 116.779, 123.68)` |
//! | slim-v2 | central crop 0.875, TF bilinear to 299x299 on floats | `(x/255 - 0.5) / 0.5` |
//! | hf | `preprocessor_config.json` (ConvNeXT processor): shorter side `int(shortest_edge / crop_pct)`, centre crop at floor offsets (or warp when `shortest_edge >= 384`), Pillow filter `resample` | `(x * rescale_factor - image_mean) / image_std` |
//!
//! The integer steps (Pillow's fixed-point resampling, nearest, crops) are bit-exact ports;
//! the float steps use the frameworks' f32 operations in their order.

mod decode;
pub mod resize;

pub use decode::{decode_image, decode_image_with, load_image, load_image_with, to_rgb};

use crate::error::{Error, Result};
use image::RgbImage;

/// Resampling filter, as Pillow implements it (`Image.NEAREST`, `BILINEAR`, `BICUBIC`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Pixel selection: source `floor((i + 0.5) * in / out)`, no filtering.
    Nearest,
    /// Triangle filter, antialiased (widened) when downscaling.
    Bilinear,
    /// Keys' cubic (a = -0.5), antialiased when downscaling.
    Bicubic,
}

/// How the decoded image becomes the network's spatial size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resize {
    /// torchvision / timm eval: shorter side to `resize` (longer side truncated as torchvision
    /// does), then centre crop `crop` x `crop` (zero-padded first if the image is smaller).
    ShorterThenCrop {
        /// Shorter side after resizing.
        resize: usize,
        /// Side of the centre crop.
        crop: usize,
        /// Resampling filter.
        filter: Filter,
    },
    /// transformers' ConvNeXT image processor (`ConvNextImageProcessorPil`, what
    /// microsoft/resnet-50 uses) below 384: shorter side to `resize` = `int(shortest_edge /
    /// crop_pct)` as torchvision does it, then the centre `crop` square at *floor* offsets
    /// `(H - crop) // 2` (an image smaller than the crop is zero-padded, the larger half of the
    /// padding before).
    HfShorterThenCrop {
        /// Shorter side after resizing.
        resize: usize,
        /// Side of the centre crop.
        crop: usize,
        /// Resampling filter.
        filter: Filter,
    },
    /// Keras `load_img(target_size=(h, w))`: squash to exactly h x w (nearest by default).
    Squash {
        /// Output height.
        height: usize,
        /// Output width.
        width: usize,
        /// Resampling filter.
        filter: Filter,
    },
    /// TF-slim inception eval preprocessing: `tf.image.central_crop` of `fraction` (0.875) of
    /// each side, then TF bilinear resize to size x size (no antialias) on float [0, 1] values.
    ///
    /// The resize is slim's own `tf.image.resize_bilinear(align_corners=False)`, i.e. TF1's
    /// legacy mapping without half-pixel centres (source = x * in/out), not TF2's
    /// `tf.image.resize`; see [`SLIM_HALF_PIXEL_CENTERS`].
    CentralCropThenResize {
        /// Fraction of each side kept by the central crop.
        fraction: f32,
        /// Output side.
        size: usize,
    },
    /// `--no-resize`: the image must already be `height x width`; anything else is an error.
    None {
        /// The required height.
        height: usize,
        /// The required width.
        width: usize,
    },
}

/// Most bytes an intermediate image of preprocessing may take (RGB8), the same bound as
/// decoding ([`decode::MAX_DECODE_BYTES`]): an extreme aspect ratio (a 1x100000 strip resized
/// to a shorter side of 256) or an absurd `--size` is an error, not a 20 GB allocation.
const MAX_IMAGE_BYTES: u64 = decode::MAX_DECODE_BYTES;

/// `Err` unless a `w x h` RGB image (`what`, for the message) stays within [`MAX_IMAGE_BYTES`].
fn check_size(w: usize, h: usize, what: &str) -> Result<()> {
    let bytes = (w as u128) * (h as u128) * 3;
    if bytes > u128::from(MAX_IMAGE_BYTES) {
        return Err(Error::Input(format!(
            "{what} makes a {w}x{h} image ({:.1} GiB), more than the {} MiB an image may take; \
             use a smaller size or crop the image",
            bytes as f64 / (1u64 << 30) as f64,
            MAX_IMAGE_BYTES >> 20
        )));
    }
    Ok(())
}

/// Whether [`Resize::CentralCropThenResize`] samples at half-pixel centres. `false`: what
/// `research/slim/preprocessing/inception_preprocessing.py` does
/// (`tf.image.resize_bilinear(image, [h, w], align_corners=False)`, TF1 semantics).
pub const SLIM_HALF_PIXEL_CENTERS: bool = false;

/// A full preprocessing recipe: resize, then per output channel `c`
/// `(x * scale - mean[c]) / std[c]` in f32.
///
/// `mean` and `std` are indexed by *output* channel, i.e. in BGR order when `bgr` is set.
/// The scale is applied as a division by `1 / scale` (snapped to 255, 127.5) because
/// that is what torch's `ToTensor` and Keras' `x /= 127.5` compute; for
/// [`Resize::CentralCropThenResize`] it is a multiplication before the resize, as TF's
/// `convert_image_dtype` does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preprocess {
    /// How the image is brought to the network's size.
    pub resize: Resize,
    /// Multiplier of the u8 values: 1/255, 1/127.5 or 1.
    pub scale: f32,
    /// Per output channel, subtracted after scaling.
    pub mean: [f32; 3],
    /// Per output channel, divided by after subtracting the mean.
    pub std: [f32; 3],
    /// Output channel 0 is blue (Keras' "caffe" mode).
    pub bgr: bool,
    /// What decoding does with an alpha channel ([`load_image_with`]).
    pub alpha: Alpha,
}

/// How an image with an alpha channel becomes RGB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Alpha {
    /// Pillow's `convert("RGB")`: the colour as stored, alpha dropped (what torchvision,
    /// timm, Keras and transformers' pipelines feed).
    #[default]
    Drop,
    /// transformers' `convert_to_rgb` (`do_convert_rgb: true`): alpha-composited onto white.
    OverWhite,
}

impl Preprocess {
    /// `resize`, then `(x/255 - 0.5) / 0.5`: inputs in [-1, 1] (timm v2, slim).
    pub fn minus_one_one(resize: Resize) -> Preprocess {
        Preprocess {
            resize,
            scale: 1.0 / 255.0,
            mean: [0.5; 3],
            std: [0.5; 3],
            bgr: false,
            alpha: Alpha::Drop,
        }
    }

    /// Decodes an image file as this recipe expects ([`Preprocess::alpha`]).
    pub fn load(&self, path: &std::path::Path) -> Result<RgbImage> {
        load_image_with(path, self.alpha)
    }

    /// As [`Preprocess::load`], on a file's bytes already in memory (the browser's files);
    /// `name` is what errors call it.
    pub fn decode(&self, bytes: &[u8], name: &str) -> Result<RgbImage> {
        decode::decode_image_with(bytes, name, self.alpha)
    }

    /// Applies the command line's `--size S`, `--resize R` and `--no-resize`:
    ///
    /// * `no_resize`: [`Resize::None`] of `S x S`, or of the current [`output_size`] without
    ///   `S`; it wins over `resize` (the CLI should reject the pair).
    /// * `ShorterThenCrop` (and transformers' `HfShorterThenCrop`): `S` is the crop; `R` the
    ///   shorter side. `S` alone scales the shorter
    ///   side with it, keeping the recipe's ratio: `R = floor(S * resize / crop)` (torchvision
    ///   224/256 gives `floor(S / 0.875)`; for timm pass `--resize` to get `floor(S / 0.95)`
    ///   exactly, the ratio 235/224 is only close to it).
    /// * `Squash` (Keras): `S` squashes to `S x S`; `R` switches to `ShorterThenCrop` with the
    ///   same filter (nearest) and crop `S` (default: the smaller current side).
    /// * `CentralCropThenResize` (slim): `S` is the output side; `R` switches to
    ///   `ShorterThenCrop` with Pillow bilinear and crop `S` (default: the current size).
    /// * `None`: `S` makes it `S x S`; `R` switches to bilinear `ShorterThenCrop`.
    ///
    /// [`output_size`]: Preprocess::output_size
    pub fn with_overrides(
        self,
        size: Option<usize>,
        resize: Option<usize>,
        no_resize: bool,
    ) -> Preprocess {
        let (h, w) = self.output_size();
        let new = if no_resize {
            let (height, width) = size.map_or((h, w), |s| (s, s));
            Resize::None { height, width }
        } else {
            let shorter = |r: usize, filter| Resize::ShorterThenCrop {
                resize: r,
                crop: size.unwrap_or(h.min(w)),
                filter,
            };
            let keep_ratio = |r0: usize, c0: usize, r: Option<usize>| {
                let crop = size.unwrap_or(c0);
                let resize = r.unwrap_or(
                    crop.checked_mul(r0)
                        .and_then(|x| x.checked_div(c0))
                        .unwrap_or(crop),
                );
                (resize, crop)
            };
            match (self.resize, resize) {
                (
                    Resize::ShorterThenCrop {
                        resize: r0,
                        crop: c0,
                        filter,
                    },
                    r,
                ) => {
                    let (resize, crop) = keep_ratio(r0, c0, r);
                    Resize::ShorterThenCrop {
                        resize,
                        crop,
                        filter,
                    }
                }
                (
                    Resize::HfShorterThenCrop {
                        resize: r0,
                        crop: c0,
                        filter,
                    },
                    r,
                ) => {
                    let (resize, crop) = keep_ratio(r0, c0, r);
                    Resize::HfShorterThenCrop {
                        resize,
                        crop,
                        filter,
                    }
                }
                (Resize::Squash { filter, .. }, Some(r)) => shorter(r, filter),
                (Resize::Squash { filter, .. }, None) => match size {
                    Some(s) => Resize::Squash {
                        height: s,
                        width: s,
                        filter,
                    },
                    None => self.resize,
                },
                (Resize::CentralCropThenResize { .. } | Resize::None { .. }, Some(r)) => {
                    shorter(r, Filter::Bilinear)
                }
                (Resize::CentralCropThenResize { fraction, .. }, None) => match size {
                    Some(s) => Resize::CentralCropThenResize { fraction, size: s },
                    None => self.resize,
                },
                (Resize::None { .. }, None) => match size {
                    Some(s) => Resize::None {
                        height: s,
                        width: s,
                    },
                    None => self.resize,
                },
            }
        };
        Preprocess {
            resize: new,
            ..self
        }
    }

    /// The network input's spatial size, `(height, width)`.
    pub fn output_size(&self) -> (usize, usize) {
        match self.resize {
            Resize::ShorterThenCrop { crop, .. } | Resize::HfShorterThenCrop { crop, .. } => {
                (crop, crop)
            }
            Resize::Squash { height, width, .. } | Resize::None { height, width } => {
                (height, width)
            }
            Resize::CentralCropThenResize { size, .. } => (size, size),
        }
    }

    /// Decoded RGB8 image -> CHW float32 network input of [`output_size`] (channel order BGR
    /// when `bgr`).
    ///
    /// [`output_size`]: Preprocess::output_size
    pub fn apply(&self, img: &RgbImage) -> Result<Vec<f32>> {
        self.apply_as(img, Order::Chw)
    }

    /// As [`Preprocess::apply`], HWC: the layout a session takes (no transpose on the way to
    /// the GPU).
    pub fn apply_hwc(&self, img: &RgbImage) -> Result<Vec<f32>> {
        self.apply_as(img, Order::Hwc)
    }

    fn apply_as(&self, img: &RgbImage, order: Order) -> Result<Vec<f32>> {
        let (iw, ih) = (img.width() as usize, img.height() as usize);
        let (oh, ow) = self.output_size();
        if iw == 0 || ih == 0 {
            return Err(Error::Input("the image has no pixels".into()));
        }
        if oh == 0 || ow == 0 {
            return Err(Error::Input(format!(
                "the input size {oh}x{ow} is empty; give --size a positive value"
            )));
        }
        check_size(ow, oh, "the network input")?;
        match self.resize {
            Resize::ShorterThenCrop {
                resize: r, filter, ..
            }
            | Resize::HfShorterThenCrop {
                resize: r, filter, ..
            } => {
                if r == 0 {
                    return Err(Error::Input(
                        "--resize 0: the shorter side must be positive".into(),
                    ));
                }
                check_size(r, r, "the --resize target")?;
                let (nw, nh) = resize::torchvision_resized_size(iw, ih, r);
                check_size(
                    nw,
                    nh,
                    &format!("resizing this {iw}x{ih} image's shorter side to {r}"),
                )?;
                let resized = resize::pillow_resize(img, nw, nh, filter);
                let cropped = match self.resize {
                    Resize::HfShorterThenCrop { .. } => resize::hf_center_crop(&resized, ow, oh),
                    _ => resize::center_crop(&resized, ow, oh),
                };
                Ok(self.normalise_u8(&cropped, order))
            }
            Resize::Squash {
                height,
                width,
                filter,
            } => Ok(self.normalise_u8(&resize::pillow_resize(img, width, height, filter), order)),
            Resize::None { height, width } => {
                if (ih, iw) != (height, width) {
                    return Err(Error::Input(format!(
                        "the image is {iw}x{ih} (width x height) but without resizing the \
                         network input must be {width}x{height}; drop --no-resize or resize \
                         the image first"
                    )));
                }
                Ok(self.normalise_u8(img, order))
            }
            Resize::CentralCropThenResize { fraction, size } => {
                if !(fraction > 0.0 && fraction <= 1.0) {
                    return Err(Error::Input(format!(
                        "central crop fraction {fraction} must lie in (0, 1]"
                    )));
                }
                Ok(self.slim(img, f64::from(fraction), size, order))
            }
        }
    }

    /// Per output channel lookup table of the 256 possible u8 values.
    fn lut(&self) -> [[f32; 256]; 3] {
        // 1/scale, snapped to a multiple of 0.5 when within f32 rounding of one: f32(1/127.5)
        // inverts to 127.49999 otherwise, and Keras divides by exactly 127.5.
        let d = 1.0 / f64::from(self.scale);
        let snapped = (d * 2.0).round() / 2.0;
        let divisor = if (d - snapped).abs() <= 1e-6 * d {
            snapped
        } else {
            d
        } as f32;
        let mut lut = [[0f32; 256]; 3];
        for (c, row) in lut.iter_mut().enumerate() {
            for (v, out) in row.iter_mut().enumerate() {
                *out = (v as f32 / divisor - self.mean[c]) / self.std[c];
            }
        }
        lut
    }

    /// Input channel feeding output channel `c`.
    fn source_channel(&self, c: usize) -> usize {
        if self.bgr { 2 - c } else { c }
    }

    fn normalise_u8(&self, img: &RgbImage, order: Order) -> Vec<f32> {
        let lut = self.lut();
        let src = img.as_raw();
        let n = src.len() / 3;
        let mut out = vec![0f32; n * 3];
        for (i, px) in src.chunks_exact(3).enumerate() {
            for (c, lut) in lut.iter().enumerate() {
                out[order.index(i, c, n)] = lut[usize::from(px[self.source_channel(c)])];
            }
        }
        out
    }

    /// slim's `preprocess_for_eval`: `convert_image_dtype` (x * (1/255) in f32), central crop,
    /// TF bilinear resize on floats, then `(v - mean) / std` (`(v - 0.5) * 2` for slim).
    fn slim(&self, img: &RgbImage, fraction: f64, size: usize, order: Order) -> Vec<f32> {
        let (iw, ih) = (img.width() as usize, img.height() as usize);
        let (x0, cw) = resize::tf_central_crop_box(iw, fraction);
        let (y0, ch) = resize::tf_central_crop_box(ih, fraction);
        let src = img.as_raw();
        let mut crop = Vec::with_capacity(cw * ch * 3);
        for y in y0..y0 + ch {
            let row = &src[(y * iw + x0) * 3..(y * iw + x0 + cw) * 3];
            crop.extend(row.iter().map(|&v| f32::from(v) * self.scale));
        }
        let hwc =
            resize::tf_resize_bilinear(&crop, (cw, ch, 3), size, size, SLIM_HALF_PIXEL_CENTERS);
        let n = size * size;
        let mut out = vec![0f32; n * 3];
        for (i, px) in hwc.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let v = px[self.source_channel(c)];
                out[order.index(i, c, n)] = (v - self.mean[c]) / self.std[c];
            }
        }
        out
    }
}

/// The layout [`Preprocess`] writes.
#[derive(Clone, Copy)]
enum Order {
    /// Planes: what frameworks and `resnet infer` take.
    Chw,
    /// Pixels: what a session runs on.
    Hwc,
}

impl Order {
    /// Where channel `c` of pixel `i` of `n` goes.
    fn index(self, i: usize, c: usize, n: usize) -> usize {
        match self {
            Order::Chw => c * n + i,
            Order::Hwc => i * 3 + c,
        }
    }
}
