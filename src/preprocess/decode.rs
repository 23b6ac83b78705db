//! Image files to RGB8 the way `PIL.Image.open(path).convert("RGB")` does it.
//!
//! The `image` crate decodes; the conversion to RGB8 follows Pillow, not `image`'s own
//! `to_rgb8` (which rounds 16-bit values):
//!
//! | source | Pillow mode | RGB8 |
//! |---|---|---|
//! | 8-bit grey (and 1/2/4-bit, scaled up) | `L` | R = G = B = L |
//! | grey + alpha, RGBA | `LA`, `RGBA` | alpha dropped, colour kept as stored (no compositing) |
//! | 16-bit grey PNG (with or without `tRNS`) | `I;16` | R = G = B = `min(v, 255)`: clipped, not scaled |
//! | 16-bit RGB(A) / grey+alpha PNG | `RGB(A)`, `LA` | `v >> 8`: the high byte |
//! | palette PNG / GIF | `P` | the palette colour (a transparent index keeps its colour) |
//!
//! [`load_image_with`] with [`Alpha::OverWhite`] composites an image that has alpha onto white
//! instead, as transformers' `convert_to_rgb` (`do_convert_rgb: true`) does.
//!
//! JPEG is decoded by `image`'s decoder (zune-jpeg), not libjpeg-turbo: on 4:2:0 files the
//! chroma upsampling differs by a few levels (see `tests/preprocess.rs`). EXIF orientation is
//! not applied, as neither `Image.open` nor Keras' `load_img` applies it. GIF: the first frame.

use super::Alpha;
use crate::error::{Error, Result};
use image::{DynamicImage, ImageFormat, RgbImage};
use std::path::Path;

/// Reads and decodes an image file (JPEG, PNG, WebP, BMP, GIF; detected from the content, not
/// the extension) into RGB8 as Pillow's `.convert("RGB")` would. Errors name the file.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    load_image_with(path, Alpha::Drop)
}

/// [`load_image`] with a choice of what happens to an alpha channel.
pub fn load_image_with(path: &Path, alpha: Alpha) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    decode_image_with(&bytes, &path.display().to_string(), alpha)
}

/// [`load_image`] on bytes already in memory; `name` (a path or any label) is what errors
/// mention. A non-image or corrupt input is an error, never a panic.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbImage> {
    decode_image_with(bytes, name, Alpha::Drop)
}

/// [`decode_image`] with a choice of what happens to an alpha channel.
pub fn decode_image_with(bytes: &[u8], name: &str, alpha: Alpha) -> Result<RgbImage> {
    let fail = |reason: String| Error::Image {
        path: name.into(),
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    let format = image::guess_format(bytes)
        .map_err(|_| fail("unrecognised content, not an image file".into()))?;
    let kind = match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Gif => "GIF",
        other => return Err(fail(format!("{other:?} images are not supported"))),
    };
    if format == ImageFormat::Jpeg && jpeg_is_truncated(bytes) {
        // zune-jpeg pads a cut-off scan with grey and succeeds; Pillow raises "image file is
        // truncated" (LOAD_TRUNCATED_IMAGES is off by default).
        return Err(fail(
            "truncated JPEG file (no end-of-image marker after the last scan)".into(),
        ));
    }
    // The decoders are fuzzed and return errors, but a corrupt file must never take the
    // process down: a panic inside one becomes an error too.
    let decoded = std::panic::catch_unwind(|| {
        let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
        reader.limits(decode_limits());
        reader.decode()
    })
    .map_err(|_| fail(format!("the {kind} decoder failed on this file")))?
    .map_err(|e| {
        let e = e.to_string();
        fail(format!(
            "corrupt or truncated {kind} file ({})",
            e.trim_end()
        ))
    })?;
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err(fail("the image has no pixels".into()));
    }
    Ok(convert(decoded, alpha, is_png_gray16(bytes)))
}

/// Decoded pixels (e.g. an array a caller decoded itself: grey, grey + alpha, RGB, RGBA) to
/// RGB8 exactly as [`decode_image_with`] converts a decoded file.
pub fn to_rgb(img: DynamicImage, alpha: Alpha) -> RgbImage {
    convert(img, alpha, false)
}

fn convert(img: DynamicImage, alpha: Alpha, gray16: bool) -> RgbImage {
    match alpha {
        // Pillow opens a 16-bit grey PNG as `I;16` (no alpha band, even with `tRNS`).
        Alpha::OverWhite if img.color().has_alpha() && !gray16 => over_white(img),
        _ => to_rgb8_like_pillow(img, gray16),
    }
}

/// Pillow's `Image.alpha_composite(white, im.convert("RGBA")).convert("RGB")` (what
/// transformers' `convert_to_rgb` does), in Pillow's fixed point (`AlphaComposite.c` with an
/// opaque destination). 16-bit images keep their high bytes, as Pillow opens them.
fn over_white(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let blend = |c: u8, a: u8| {
        let (c, a) = (u32::from(c), u32::from(a));
        let tmp = c * (a << 7) + 255 * ((255 - a) << 7) + (0x80 << 7);
        (((tmp >> 8) + tmp) >> 15) as u8
    };
    let rgba: Vec<[u8; 4]> = match img {
        DynamicImage::ImageLumaA8(i) => i
            .pixels()
            .map(|p| [p.0[0], p.0[0], p.0[0], p.0[1]])
            .collect(),
        DynamicImage::ImageLumaA16(i) => i
            .pixels()
            .map(|p| {
                let l = (p.0[0] >> 8) as u8;
                [l, l, l, (p.0[1] >> 8) as u8]
            })
            .collect(),
        DynamicImage::ImageRgba16(i) => i.pixels().map(|p| p.0.map(|v| (v >> 8) as u8)).collect(),
        other => other
            .to_rgba8()
            .pixels()
            .map(|p| p.0)
            .collect::<Vec<[u8; 4]>>(),
    };
    let data = rgba
        .iter()
        .flat_map(|&[r, g, b, a]| [blend(r, a), blend(g, a), blend(b, a)])
        .collect();
    rgb_from(w, h, data)
}

/// Most memory one decoded image may take: a corrupt header that claims a huge image (a few
/// bytes saying 60000x60000) is refused before anything that size is allocated. 512 MiB holds
/// a 170-megapixel RGB8 photo.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

fn decode_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// No EOI marker (FF D9) after the last start-of-scan (FF DA). Entropy-coded data cannot hold
/// either marker (an FF there is followed by 00 or RSTn), and embedded thumbnails come before the
/// main image's scans, so this finds a file cut off inside its last scan. (A file that only lacks
/// the final EOI is rejected too; Pillow would accept it.)
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let Some(sos) = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) else {
        return false; // no scan at all: the decoder reports it
    };
    !bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// True for a PNG whose IHDR says 16-bit greyscale (colour type 0): Pillow opens it as `I;16`
/// and clips, even when a `tRNS` chunk made `image` report grey+alpha.
fn is_png_gray16(bytes: &[u8]) -> bool {
    bytes.len() > 25
        && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        && &bytes[12..16] == b"IHDR"
        && bytes[24] == 16
        && bytes[25] == 0
}

fn rgb_from(w: u32, h: u32, data: Vec<u8>) -> RgbImage {
    RgbImage::from_raw(w, h, data).expect("3 bytes per pixel")
}

/// Pillow's `convert("RGB")` of what Pillow would have opened; see the module table.
fn to_rgb8_like_pillow(img: DynamicImage, gray16: bool) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let grey = |v: u8| [v, v, v];
    // I;16 -> L clips; every other 16-bit mode keeps the high byte.
    let g16 = |v: u16| {
        if gray16 {
            v.min(255) as u8
        } else {
            (v >> 8) as u8
        }
    };
    let data: Vec<u8> = match img {
        DynamicImage::ImageRgb8(i) => return i,
        DynamicImage::ImageLuma8(i) => i.pixels().flat_map(|p| grey(p.0[0])).collect(),
        DynamicImage::ImageLumaA8(i) => i.pixels().flat_map(|p| grey(p.0[0])).collect(),
        DynamicImage::ImageRgba8(i) => i.pixels().flat_map(|p| [p.0[0], p.0[1], p.0[2]]).collect(),
        DynamicImage::ImageLuma16(i) => i.pixels().flat_map(|p| grey(g16(p.0[0]))).collect(),
        DynamicImage::ImageLumaA16(i) => i.pixels().flat_map(|p| grey(g16(p.0[0]))).collect(),
        DynamicImage::ImageRgb16(i) => i.as_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        DynamicImage::ImageRgba16(i) => i
            .pixels()
            .flat_map(|p| [p.0[0], p.0[1], p.0[2]].map(|v| (v >> 8) as u8))
            .collect(),
        // Float images do not come out of the five supported formats.
        other => return other.to_rgb8(),
    };
    rgb_from(w, h, data)
}
