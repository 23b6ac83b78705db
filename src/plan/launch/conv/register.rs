//! `conv_register` (`shaders/conv/register.wgsl`): register tiles, no workgroup memory.

use super::Variant;
use crate::plan::kernel::ConvConfig;
use crate::plan::launch::{Bindings, Shader};

pub(crate) struct Register;

impl Variant for Register {
    const SHADER: Shader = Shader::ConvRegister;
    const ENTRY: &'static str = "conv_register";
    const BINDINGS: Bindings = Bindings::Consts;

    fn constants(cfg: &ConvConfig) -> Vec<(&'static str, f64)> {
        let flag = |b: bool| f64::from(u8::from(b));
        vec![
            ("VEC4", flag(cfg.vec4)),
            ("IS_1X1", flag(cfg.is_1x1)),
            ("CHECKS", flag(cfg.checks)),
            ("RWG", f64::from(cfg.wg)),
        ]
    }
}
