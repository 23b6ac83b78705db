//! The fused implicit-GEMM convolution (`shaders/conv.wgsl`).

use super::texture::TextureCopy;
use super::{Bindings, Kernels, Shader, elem_offset, u32_of};
use crate::gpu::{Dispatch, Stage};
use crate::graph::{ConvOp, TensorInfo, pad4};
use crate::plan::kernel::{ConvConfig, ConvVariant, DeviceProfile, TMAX, choose_conv};
#[cfg(test)]
use crate::plan::kernel::{RTM, RTN4, RWG, SBK, SBM, SBN4, TN4};

const FLAG_IN_ACT: u32 = 1;
const FLAG_RESIDUAL: u32 = 2;
const FLAG_RELU: u32 = 4;
const FLAG_SPLIT_RELU: u32 = 8;
/// Raster order of the workgroup tiles: M fastest when the weights are larger than the input
/// (see `tile_coords` in conv.wgsl).
const FLAG_M_FASTEST: u32 = 16;

/// Mirrors `Params` in conv.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    cout: u32,
    cin: u32,
    coutp4: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    in_off: u32,
    out_off: u32,
    res_off: u32,
    split_off: u32,
    at: u32,
    res_h: u32,
    res_w: u32,
    res_stride: u32,
    flags: u32,
    bias4: u32,
    act4: u32,
    cinp4: u32,
    tiles_n: u32,
    tiles: u32,
    w_texel: u32,
    _pad: u32,
}

/// What the texture variant reads besides the arena (see `conv_texture` in conv.wgsl).
#[derive(Clone, Copy, Debug)]
pub struct ConvTextures<'a> {
    /// Staging texture the op's input is copied into before the dispatch (at least as many
    /// texels as the input has vec4s).
    pub input: &'a wgpu::Texture,
    /// Texture copy of the weights buffer holding the op's constants.
    pub weights: &'a wgpu::Texture,
    /// Texel index of the op's constants in `weights` (the slot's byte offset / 16).
    pub weights_texel: u32,
}

impl Kernels {
    /// What plan-time kernel choices should assume about this device (including a variant
    /// forced with [`Kernels::set_conv_variant`] or `RESNET_CONV_VARIANT`).
    pub fn device_profile(&self) -> DeviceProfile {
        DeviceProfile {
            software: self.software,
            textures: self.textures,
            forced: self.conv_variant,
        }
    }

    /// This device's configuration for this op ([`choose_conv`] with [`Kernels::device_profile`]).
    pub fn conv_config_for(
        &self,
        op: &ConvOp,
        tensors: &[TensorInfo],
        batch: u32,
    ) -> crate::Result<ConvConfig> {
        choose_conv(op, tensors, batch as usize, &self.device_profile())
    }

    /// One fused convolution in configuration `cfg` (from [`choose_conv`] for this op and
    /// batch: its GEMM shape is checked). `consts`: the op's slot of the weights buffer, laid
    /// out by [`Op::constants`](crate::graph::Op::constants). `textures`: required by the
    /// texture variant; the returned dispatch then carries the copy of its input into
    /// `textures.input` (record it with [`encode_sequence`](crate::gpu::encode_sequence)).
    #[allow(clippy::too_many_arguments)]
    pub fn conv_with(
        &self,
        cfg: &ConvConfig,
        op: &ConvOp,
        tensors: &[TensorInfo],
        batch: u32,
        arena: &wgpu::Buffer,
        offsets: &[u64],
        consts: wgpu::BufferBinding<'_>,
        textures: Option<ConvTextures<'_>>,
    ) -> Dispatch {
        let ti = &tensors[op.input];
        let to = &tensors[op.output];
        let at = op.split.as_ref().map_or(op.cout, |s| s.at);
        assert_eq!(ti.c, op.cin, "{}: input channels", op.name);
        assert_eq!(to.c, at, "{}: output channels", op.name);
        assert!(at <= op.cout && op.cout > 0 && op.stride > 0);
        let coutp = pad4(op.cout);
        let k = op.kh * op.kw * op.cin;
        let m = batch as usize * to.h * to.w;
        let mut flags = 0;
        if op.in_act.is_some() {
            flags |= FLAG_IN_ACT;
        }
        if op.relu {
            flags |= FLAG_RELU;
        }
        assert_eq!(
            (cfg.m as usize, cfg.n as usize, cfg.k as usize),
            (m, op.cout, k),
            "{}: kernel config for another shape",
            op.name
        );
        if cfg.m_fastest {
            flags |= FLAG_M_FASTEST;
        }
        let mut params = Params {
            m: u32_of(m),
            cout: u32_of(op.cout),
            cin: u32_of(op.cin),
            coutp4: u32_of(coutp / 4),
            h: u32_of(ti.h),
            w: u32_of(ti.w),
            oh: u32_of(to.h),
            ow: u32_of(to.w),
            kh: u32_of(op.kh),
            kw: u32_of(op.kw),
            stride: u32_of(op.stride),
            pad: u32_of(op.pad),
            in_off: elem_offset(offsets, op.input),
            out_off: elem_offset(offsets, op.output),
            at: u32_of(at),
            bias4: u32_of(k * coutp / 4),
            act4: u32_of((k + 1) * coutp / 4),
            cinp4: u32_of(pad4(op.cin) / 4),
            ..Default::default()
        };
        if let Some(r) = &op.residual {
            let rt = &tensors[r.tensor];
            assert_eq!(rt.c, at, "{}: residual channels", op.name);
            assert!(
                r.stride > 0 && (to.h - 1) * r.stride < rt.h && (to.w - 1) * r.stride < rt.w,
                "{}: residual too small",
                op.name
            );
            flags |= FLAG_RESIDUAL;
            params.res_off = elem_offset(offsets, r.tensor);
            params.res_h = u32_of(rt.h);
            params.res_w = u32_of(rt.w);
            params.res_stride = u32_of(r.stride);
        }
        if let Some(s) = &op.split {
            assert_eq!(
                tensors[s.tensor].c,
                op.cout - at,
                "{}: split channels",
                op.name
            );
            if s.relu {
                flags |= FLAG_SPLIT_RELU;
            }
            params.split_off = elem_offset(offsets, s.tensor);
        }
        params.flags = flags;

        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let (entry, constants) = match cfg.variant {
            ConvVariant::Register => (
                "conv_register",
                vec![
                    ("VEC4", flag(cfg.vec4)),
                    ("IS_1X1", flag(cfg.is_1x1)),
                    ("CHECKS", flag(cfg.checks)),
                    ("RWG", f64::from(cfg.wg)),
                ],
            ),
            ConvVariant::Shared => (
                "conv_shared",
                vec![
                    ("VEC4", flag(cfg.vec4)),
                    ("IS_1X1", flag(cfg.is_1x1)),
                    ("CHECKS", flag(cfg.checks)),
                ],
            ),
            ConvVariant::Texture => (
                "conv_texture",
                vec![("RWG", f64::from(cfg.wg)), ("TM", f64::from(cfg.rows))],
            ),
        };
        params.tiles_n = cfg.tiles_n;
        params.tiles = cfg.tiles;
        if cfg.variant != ConvVariant::Texture {
            let pipeline = self.pipeline(Shader::Conv, entry, &constants, Bindings::Consts);
            return self.dispatch(
                &op.name,
                pipeline,
                bytemuck::bytes_of(&params),
                arena,
                &[wgpu::BindingResource::Buffer(consts)],
                params.tiles,
            );
        }
        let tex =
            textures.unwrap_or_else(|| panic!("{}: the texture variant needs textures", op.name));
        assert!(
            !cfg.is_1x1 && cfg.checks && (1..=TMAX).contains(&cfg.rows),
            "{}: not a texture-variant configuration",
            op.name
        );
        params.w_texel = tex.weights_texel;
        let pixels = batch as usize * ti.h * ti.w;
        let pipeline = self.pipeline(Shader::Conv, entry, &constants, Bindings::Textures);
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        let (input_view, weights_view) = (view(tex.input), view(tex.weights));
        let mut d = self.dispatch(
            &op.name,
            pipeline,
            bytemuck::bytes_of(&params),
            arena,
            &[
                wgpu::BindingResource::Buffer(consts),
                wgpu::BindingResource::TextureView(&input_view),
                wgpu::BindingResource::TextureView(&weights_view),
            ],
            params.tiles,
        );
        d.stage = Some(if op.cin.is_multiple_of(4) {
            // NHWC with 4k channels already is the texture's layout: copy the bytes.
            Stage::Copy(TextureCopy {
                buffer: arena.clone(),
                offset: offsets[op.input],
                texels: (pixels * op.cin / 4) as u64,
                texture: tex.input.clone(),
            })
        } else {
            Stage::Pack(Box::new(self.pack_texture(
                &format!("{} (pack input)", op.name),
                arena,
                params.in_off,
                pixels,
                op.cin,
                tex.input,
            )))
        });
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_constants_match_the_shader() {
        let src = Shader::Conv.source();
        // Both shaders that address the vec4 textures.
        let tex_width = format!(
            "const TEX_WIDTH: u32 = {}u;",
            crate::gpu::kernels::texture::TEXTURE_WIDTH
        );
        for line in [
            format!("const RTM: u32 = {RTM}u;"),
            format!("const RTN4: u32 = {RTN4}u;"),
            format!("override RWG: u32 = {RWG}u;"),
            format!("const SBM: u32 = {SBM}u;"),
            format!("const SBN4: u32 = {SBN4}u;"),
            format!("const SBK: u32 = {SBK}u;"),
            format!("const TMAX: u32 = {TMAX}u;"),
            format!("const TN4: u32 = {TN4}u;"),
            tex_width.clone(),
            format!("const FLAG_IN_ACT: u32 = {FLAG_IN_ACT}u;"),
            format!("const FLAG_RESIDUAL: u32 = {FLAG_RESIDUAL}u;"),
            format!("const FLAG_RELU: u32 = {FLAG_RELU}u;"),
            format!("const FLAG_SPLIT_RELU: u32 = {FLAG_SPLIT_RELU}u;"),
            format!("const FLAG_M_FASTEST: u32 = {FLAG_M_FASTEST}u;"),
        ] {
            assert!(src.contains(&line), "conv.wgsl lacks `{line}`");
        }
        assert!(
            Shader::Texture.source().contains(&tex_width),
            "texture.wgsl lacks `{tex_width}`"
        );
        assert_eq!(size_of::<Params>(), 28 * 4);
    }
}
