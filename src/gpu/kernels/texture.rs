//! vec4 textures for the texture conv variant (`shaders/conv/texture.wgsl`): an rgba32float (or
//! rgba16float, for f16 data) texture [`TEXTURE_WIDTH`] texels wide holding a linear array of
//! vec4, texel `i` at `(i % TEXTURE_WIDTH, i / TEXTURE_WIDTH)`, filled by copies from a buffer
//! (or by `pack_texture`). The plan sizes them ([`crate::plan::Textures`]); this creates them.

pub use crate::plan::launch::{TEXTURE_WIDTH, texture_rows as rows_for};

use crate::plan::Dtype;

/// The texture format holding vec4s of `dtype`.
pub fn format_of(dtype: Dtype) -> wgpu::TextureFormat {
    match dtype {
        Dtype::F32 => wgpu::TextureFormat::Rgba32Float,
        Dtype::F16 => wgpu::TextureFormat::Rgba16Float,
    }
}

fn texel_bytes(format: wgpu::TextureFormat) -> u64 {
    match format {
        wgpu::TextureFormat::Rgba16Float => 8,
        _ => 16,
    }
}

/// A texture for `texels` vec4 of `dtype` (the plan checked that it fits the device).
pub fn create(device: &wgpu::Device, texels: u64, dtype: Dtype, label: &str) -> wgpu::Texture {
    let format = format_of(dtype);
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: TEXTURE_WIDTH,
            height: u32::try_from(rows_for(texels)).expect("texture rows fit in u32"),
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        // Filled by buffer copies or, for f32 inputs whose channels need padding, by a kernel.
        usage: wgpu::TextureUsages::TEXTURE_BINDING
            | wgpu::TextureUsages::COPY_DST
            | if dtype == Dtype::F32 {
                wgpu::TextureUsages::STORAGE_BINDING
            } else {
                wgpu::TextureUsages::empty()
            },
        view_formats: &[],
    })
}

/// A texture holding a copy of all of `buffer` (of `dtype` values; its size a multiple of a
/// texel), filled by a copy recorded into `encoder`: the texture conv variant's weights.
pub fn copy_of_buffer(
    device: &wgpu::Device,
    encoder: &mut wgpu::CommandEncoder,
    buffer: &wgpu::Buffer,
    dtype: Dtype,
    label: &str,
) -> wgpu::Texture {
    let texels = buffer.size() / texel_bytes(format_of(dtype));
    let texture = create(device, texels, dtype, label);
    TextureCopy {
        buffer: buffer.clone(),
        offset: 0,
        texels,
        texture: texture.clone(),
    }
    .encode(encoder);
    texture
}

/// A copy of `texels` vec4 from `buffer` at byte `offset` (a multiple of the texel size) to the
/// first texels of a texture.
#[derive(Clone, Debug)]
pub struct TextureCopy {
    /// The buffer copied from.
    pub buffer: wgpu::Buffer,
    /// Byte offset in `buffer`.
    pub offset: u64,
    /// Number of vec4 texels copied.
    pub texels: u64,
    /// The texture copied to.
    pub texture: wgpu::Texture,
}

impl TextureCopy {
    /// Records the copy: whole rows in one region, the remainder as a partial last row.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let width = u64::from(TEXTURE_WIDTH);
        let texel = texel_bytes(self.texture.format());
        let full_rows = self.texels / width;
        let rest = self.texels % width;
        let mut region = |offset: u64, y: u64, w: u64, h: u64| {
            encoder.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset,
                        bytes_per_row: Some((width * texel) as u32),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &self.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d {
                        x: 0,
                        y: y as u32,
                        z: 0,
                    },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width: w as u32,
                    height: h as u32,
                    depth_or_array_layers: 1,
                },
            )
        };
        if full_rows > 0 {
            region(self.offset, 0, width, full_rows);
        }
        if rest > 0 {
            region(self.offset + full_rows * width * texel, full_rows, rest, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        assert_eq!(rows_for(0), 1);
        assert_eq!(rows_for(4096), 1);
        assert_eq!(rows_for(4097), 2);
    }
}
