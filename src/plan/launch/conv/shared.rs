//! `conv_shared` (`shaders/conv/shared.wgsl`): tiles staged in workgroup memory, for GPUs;
//! the tile shape (one of `plan::kernel::SHARED_TILES`) is override constants.

use super::Variant;
use crate::plan::kernel::ConvConfig;
use crate::plan::launch::{Bindings, Shader};

pub(crate) struct Shared;

impl Variant for Shared {
    const SHADER: Shader = Shader::ConvShared;
    const ENTRY: &'static str = "conv_shared";
    const BINDINGS: Bindings = Bindings::Consts;

    fn constants(cfg: &ConvConfig) -> Vec<(&'static str, f64)> {
        let flag = |b: bool| f64::from(u8::from(b));
        let t = cfg.shared_tile();
        vec![
            ("WG_M", f64::from(t.wg_m)),
            ("WG_N", f64::from(t.wg_n)),
            ("TM", f64::from(t.tm)),
            ("TN4", f64::from(t.tn4)),
            ("BK", f64::from(t.bk)),
            ("VEC4", flag(cfg.vec4)),
            ("IS_1X1", flag(cfg.is_1x1)),
            ("CHECKS", flag(cfg.checks)),
            ("SPLIT_K", flag(cfg.splits > 1)),
        ]
    }
}
