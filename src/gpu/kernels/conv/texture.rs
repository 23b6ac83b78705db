//! `conv_texture` (`shaders/conv/texture.wgsl`): A and B as texel fetches, for software
//! adapters. Its input is staged into a texture just before the dispatch (a copy, or
//! `pack_texture` for inputs whose channels need padding to 4).

use super::{ConvIo, Params};
use crate::gpu::Dispatch;
use crate::gpu::kernels::{Bindings, Kernels, Shader};
use crate::plan::kernel::{ConvConfig, TEXTURE_MAX_ROWS};

/// What the texture variant reads besides the arena.
#[derive(Clone, Copy, Debug)]
pub struct ConvTextures<'a> {
    /// Staging textures the GEMM's A is copied into before the dispatch (at least as many
    /// texels as A has vec4s): rgba32float for f32 inputs (and packed ones), rgba16float for
    /// f16 inputs (f16 plans only).
    pub input: &'a wgpu::Texture,
    /// The rgba16float staging texture for f16 inputs (f16 plans only).
    pub input16: Option<&'a wgpu::Texture>,
    /// Texture copy of the weights buffer holding the op's constants.
    pub weights: &'a wgpu::Texture,
    /// Texel index of the op's constants in `weights` (the slot's byte offset / texel size).
    pub weights_texel: u32,
}

impl ConvTextures<'_> {
    /// The staging texture for an A of f16 (`a16`) or f32 values.
    pub(super) fn staging(&self, a16: bool) -> &wgpu::Texture {
        if a16 {
            self.input16
                .expect("an f16 plan creates the f16 staging texture")
        } else {
            self.input
        }
    }
}

impl Kernels {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn texture_dispatch(
        &self,
        label: &str,
        cfg: &ConvConfig,
        mut params: Params,
        storage: &[(&'static str, f64)],
        io: &ConvIo<'_>,
        groups: [u32; 2],
        a16: bool,
    ) -> Dispatch {
        let tex = io
            .textures
            .as_ref()
            .unwrap_or_else(|| panic!("{label}: the texture variant needs textures"));
        assert!(
            cfg.checks && (1..=TEXTURE_MAX_ROWS).contains(&cfg.rows),
            "{label}: not a texture-variant configuration"
        );
        params.w_texel = tex.weights_texel;
        let mut constants = vec![("TWG", f64::from(cfg.wg)), ("TM", f64::from(cfg.rows))];
        constants.extend_from_slice(storage);
        let pipeline = self.pipeline(
            Shader::ConvTexture,
            "conv_texture",
            &constants,
            Bindings::Textures,
        );
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        let (input_view, weights_view) = (view(tex.staging(a16)), view(tex.weights));
        self.dispatch(
            label,
            pipeline,
            bytemuck::bytes_of(&params),
            io.arena,
            &[
                wgpu::BindingResource::Buffer(io.consts.clone()),
                wgpu::BindingResource::TextureView(&input_view),
                wgpu::BindingResource::TextureView(&weights_view),
            ],
            groups,
        )
    }
}
