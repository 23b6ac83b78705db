//! `conv_texture` (`shaders/conv/texture.wgsl`): A and B as texel fetches, for software
//! adapters. Its input is staged into a texture just before the launch: a copy when its
//! channels are a multiple of 4 (NHWC with 4k channels is the texture's layout), otherwise
//! `pack_texture` (`shaders/conv/pack.wgsl`) pads each pixel's channels to 4. Its weights
//! are read from a texture copy of the weights buffer.

use super::{Before, Gemm, Variant};
use crate::plan::Dtype;
use crate::plan::kernel::{ConvConfig, TEXTURE_MAX_ROWS};
use crate::plan::launch::{Bindings, PipelineKey, Resource, Shader, StagingCopy, Textures, u32_of};

pub(crate) struct Texture;

/// The packing kernel's entry point.
pub const PACK_ENTRY: &str = "pack_texture";

/// `pack_texture`'s uniform; mirrors `Params` in pack.wgsl (`tests/shaders.rs` checks it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[allow(missing_docs)] // each field is described where the shader declares it
pub struct PackParams {
    pub texels: u32,
    pub cin: u32,
    pub cinp4: u32,
    pub in_off: u32,
}

/// `pack_texture`'s pipeline.
pub(super) fn pack_key() -> PipelineKey {
    PipelineKey {
        shader: Shader::Pack,
        entry: PACK_ENTRY,
        constants: Vec::new(),
        bindings: Bindings::Pack,
    }
}

impl Variant for Texture {
    const SHADER: Shader = Shader::ConvTexture;
    const ENTRY: &'static str = "conv_texture";
    const BINDINGS: Bindings = Bindings::Textures;

    fn constants(cfg: &ConvConfig) -> Vec<(&'static str, f64)> {
        assert!(
            cfg.checks && (1..=TEXTURE_MAX_ROWS).contains(&cfg.rows),
            "not a texture-variant configuration: {cfg:?}"
        );
        vec![("TWG", f64::from(cfg.wg)), ("TM", f64::from(cfg.rows))]
    }

    fn bindings(g: &mut Gemm<'_>) -> Vec<Resource> {
        let w = g.at.weights;
        let wdtype = g.at.weights_dtype;
        g.params.w_texel = u32::try_from(w.offset_bytes / Textures::texel_bytes(wdtype))
            .expect("weights texture offset fits in u32");
        let a = if g.a16 { Dtype::F16 } else { Dtype::F32 };
        let elem = a.bytes();
        let staging = if g.params.cin.is_multiple_of(4) {
            g.copy = Some(StagingCopy {
                offset_bytes: u64::from(g.params.in_off) * elem,
                texels: g.pixels * u64::from(g.params.cin) / 4,
                dtype: a,
            });
            Resource::StagingTexture(a)
        } else {
            // Packed into the f32 staging texture (only the stem's 3 channels, f32 in every plan).
            let cin = g.params.cin as usize;
            let cinp4 = cin.div_ceil(4);
            let params = PackParams {
                texels: u32_of(g.pixels as usize * cinp4),
                cin: u32_of(cin),
                cinp4: u32_of(cinp4),
                in_off: g.params.in_off,
            };
            g.before.push(Before {
                label: format!("{} (pack input)", g.label),
                pipeline: pack_key(),
                uniform: bytemuck::bytes_of(&params).to_vec(),
                bindings: vec![Resource::PackTarget {
                    texels: u64::from(params.texels),
                }],
                groups: [
                    params
                        .texels
                        .div_ceil(crate::plan::launch::workgroup_size(PACK_ENTRY)),
                    1,
                ],
            });
            Resource::StagingTexture(Dtype::F32)
        };
        // The shader reads every constant from the weights texture: binding 2 (the buffer
        // slot of the other variants) is a stand-in, so that the buffer need not stay.
        vec![
            Resource::NoWeights,
            staging,
            Resource::WeightsTexture(w.buffer),
        ]
    }
}
