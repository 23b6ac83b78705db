//! Reading and writing float32 tensors in safetensors files (inputs, logits, feature maps).

use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::path::Path;

/// A float32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// Reads a whole file; the error names the path.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Parses safetensors bytes; a truncated or corrupt file becomes [`Error::Safetensors`].
pub fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| Error::Safetensors {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Decodes a little-endian F32 view (safetensors does not promise 4-byte alignment).
pub fn f32_data(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    if view.dtype() != Dtype::F32 {
        return Err(Error::Dtype {
            name: name.to_string(),
            dtype: format!("{:?}", view.dtype()),
        });
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Decodes a little-endian F32, F16 or BF16 view as f32 (the half formats widened exactly,
/// NaN and infinities kept), [`Error::Dtype`] for anything else.
pub fn float_data(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let halves = |widen: fn(u16) -> f32| {
        view.data()
            .chunks_exact(2)
            .map(|b| widen(u16::from_le_bytes([b[0], b[1]])))
            .collect()
    };
    match view.dtype() {
        Dtype::F16 => Ok(halves(|h| half::f16::from_bits(h).to_f32())),
        Dtype::BF16 => Ok(halves(|h| half::bf16::from_bits(h).to_f32())),
        _ => f32_data(name, view),
    }
}

/// Reads tensor `name` from a safetensors file.
pub fn read_tensor(path: &Path, name: &str) -> Result<Tensor> {
    let bytes = read_file(path)?;
    let st = parse(path, &bytes)?;
    let view = st.tensor(name).map_err(|_| {
        Error::Input(format!(
            "{} has no tensor `{name}` (it has: {})",
            path.display(),
            st.names().join(", ")
        ))
    })?;
    Ok(Tensor {
        shape: view.shape().to_vec(),
        data: f32_data(name, &view)?,
    })
}

/// Writes float32 tensors to a safetensors file.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            TensorView::new(Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&t.data))
                .map(|v| (name.as_str(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Input(format!("cannot encode tensors: {e}")))?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| write_error(path, e))
}

/// A failed safetensors write: an I/O failure is [`Error::Write`] (the folder is missing, the
/// disk is full, ...), anything else a failure to encode.
pub(crate) fn write_error(path: &Path, e: safetensors::SafeTensorError) -> Error {
    match e {
        safetensors::SafeTensorError::IoError(source) => Error::Write {
            path: path.to_owned(),
            source,
        },
        other => Error::Input(format!("cannot encode {}: {other}", path.display())),
    }
}
