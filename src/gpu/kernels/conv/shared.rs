//! `conv_shared` (`shaders/conv/shared.wgsl`): tiles staged in workgroup memory, for GPUs.

use super::Variant;
use crate::gpu::kernels::{Bindings, Shader};
use crate::plan::kernel::ConvConfig;

pub(crate) struct Shared;

impl Variant for Shared {
    const SHADER: Shader = Shader::ConvShared;
    const ENTRY: &'static str = "conv_shared";
    const BINDINGS: Bindings = Bindings::Consts;

    fn constants(cfg: &ConvConfig) -> Vec<(&'static str, f64)> {
        let flag = |b: bool| f64::from(u8::from(b));
        vec![
            ("VEC4", flag(cfg.vec4)),
            ("IS_1X1", flag(cfg.is_1x1)),
            ("CHECKS", flag(cfg.checks)),
        ]
    }
}
