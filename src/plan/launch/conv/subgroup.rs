//! `conv_subgroup` (`shaders/conv/subgroup.wgsl`): lanes along M, B broadcast by subgroup
//! shuffles, 64-bit loads; for software adapters with subgroups of 8 and 64-bit integers.

use super::Variant;
use crate::plan::kernel::ConvConfig;
use crate::plan::launch::{Bindings, Shader};

pub(crate) struct Subgroup;

impl Variant for Subgroup {
    const SHADER: Shader = Shader::ConvSubgroup;
    const ENTRY: &'static str = "conv_subgroup";
    const BINDINGS: Bindings = Bindings::Consts;

    fn constants(cfg: &ConvConfig) -> Vec<(&'static str, f64)> {
        vec![("BR", f64::from(cfg.rows)), ("BN4", f64::from(cfg.tile_n4))]
    }
}
