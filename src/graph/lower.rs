use super::Graph;
use crate::error::Result;
use crate::model::{Arch, Params};

/// Lowering switches.
#[derive(Clone, Copy, Debug, Default)]
pub struct LowerOptions {
    /// Keep the `feat/*` maps alive (and materialise the v2 post-norm map) for read-back.
    pub features: bool,
}

/// Lowers a network at input size `h x w` to fused ops. (In progress.)
pub fn lower(
    _arch: &Arch,
    _params: &Params,
    _h: usize,
    _w: usize,
    _opts: &LowerOptions,
) -> Result<Graph> {
    todo!()
}
