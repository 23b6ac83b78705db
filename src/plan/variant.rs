//! What a conv step runs, as plan data: the algorithm ([`ConvAlgo`]), the GEMM kernel variant
//! ([`ConvVariant`]) with its tile configuration and grid ([`ConvConfig`]), and where the
//! choice came from ([`Origin`]). The heuristic that chooses them is `plan::kernel`; the
//! launches that run them, `plan::launch::conv`.

use super::tiles::SharedTile;
use crate::error::Error;
use crate::winograd::Tile;
use std::str::FromStr;

/// Which conv kernel runs a GEMM (`shaders/conv/<name>.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvVariant {
    /// Tiles of A and B staged in workgroup memory (`conv_shared`): what real GPUs need.
    Shared,
    /// Register tiling only, no workgroup memory or barriers (`conv_register`): small GEMMs.
    Register,
    /// A and B read as texel fetches from textures (`conv_texture`), up to 16-pixel x
    /// 16-channel register tiles: the fastest on lavapipe, but its pipelines take ~10 s each to
    /// compile on a cold shader cache.
    Texture,
    /// Lanes along M, B broadcast by subgroup shuffles, 64-bit loads (`conv_subgroup`): for
    /// software adapters with subgroups and 64-bit integers; compiles in a fraction of a second.
    Subgroup,
}

impl ConvVariant {
    /// Every variant.
    pub const ALL: [ConvVariant; 4] = [
        ConvVariant::Shared,
        ConvVariant::Register,
        ConvVariant::Texture,
        ConvVariant::Subgroup,
    ];

    /// The variant's name (`shared`, `register`, `texture`, `subgroup`).
    pub fn name(self) -> &'static str {
        match self {
            ConvVariant::Shared => "shared",
            ConvVariant::Register => "register",
            ConvVariant::Texture => "texture",
            ConvVariant::Subgroup => "subgroup",
        }
    }
}

impl FromStr for ConvVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.to_ascii_lowercase();
        ConvVariant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                Error::Input(format!(
                    "unknown conv variant `{s}`: use shared, register, texture or subgroup"
                ))
            })
    }
}

/// How a conv computes: directly (one implicit GEMM) or by Winograd's minimal filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvAlgo {
    /// One implicit GEMM.
    Direct,
    /// Input transform, `a^2` batched GEMMs, output transform (3x3, stride 1 only).
    Winograd(Tile),
    /// One GEMM with its K range split this many ways (workgroup z), partial sums in a planned
    /// scratch tensor, then a reduction that applies the epilogue: for layers whose output
    /// has too few tiles to fill a GPU.
    SplitK(u32),
}

impl ConvAlgo {
    /// The algorithm's name for reports.
    pub fn name(self) -> String {
        match self {
            ConvAlgo::Direct => "direct".into(),
            ConvAlgo::Winograd(t) => t.name().into(),
            ConvAlgo::SplitK(s) => format!("split-K {s}"),
        }
    }

    /// Winograd's tile, if any.
    pub fn tile(self) -> Option<Tile> {
        match self {
            ConvAlgo::Winograd(t) => Some(t),
            _ => None,
        }
    }

    /// The step runs as a first dispatch that reads the input and a last one that writes the
    /// output (and reads the residual), with planned scratch between: see `plan::PHASES`.
    pub fn phased(self) -> bool {
        !matches!(self, ConvAlgo::Direct)
    }
}

/// How one GEMM runs: the pipeline (variant + override constants) and its grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvConfig {
    /// The kernel variant.
    pub variant: ConvVariant,
    /// Invocations per workgroup.
    pub wg: u32,
    /// Output pixels (GEMM rows) per workgroup tile.
    pub tile_m: u32,
    /// Output pixels per invocation (texture: TM; subgroup: per lane; 1 otherwise).
    pub rows: u32,
    /// vec4 output-channel columns per workgroup tile.
    pub tile_n4: u32,
    /// vec4 output-channel columns per invocation.
    pub cols4: u32,
    /// K per staged tile (shared variant; 0 for the others).
    pub k_step: u32,
    /// K slices (split K: workgroup z), 1 otherwise.
    pub splits: u32,
    /// Input channels a multiple of 4: vec4 activation loads.
    pub vec4: bool,
    /// 1x1, stride 1, pad 0: A is the input tensor itself.
    pub is_1x1: bool,
    /// False when the tiles divide M, N (and K for the shared variant) exactly and cout is a
    /// multiple of the tile's channels: the bounds checks are compiled out.
    pub checks: bool,
    /// Walk M fastest over the workgroup tiles (weights larger than the input).
    pub m_fastest: bool,
    /// GEMM shape: M = batch * OH * OW (Winograd: tiles), N = cout, K = KH * KW * Cin.
    pub m: u32,
    /// GEMM columns (output channels).
    pub n: u32,
    /// GEMM depth.
    pub k: u32,
    /// Workgroup tiles along N and in all (per GEMM of a batch).
    pub tiles_n: u32,
    /// Workgroup tiles in all, per GEMM of a batch.
    pub tiles: u32,
    /// Independent GEMMs of this shape (Winograd: the a^2 points; 1 for a conv).
    pub gemms: u32,
}

/// Where a conv's kernel choice came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The plan's rules ([`choose_algo`](super::kernel::choose_algo), [`plan_conv`](super::kernel::plan_conv)).
    #[default]
    Heuristic,
    /// A tuning table's entry for this shape ([`super::tuning`]).
    Tuned,
    /// `RESNET_CONV_VARIANT` / `RESNET_WINOGRAD` (or a test) forced it.
    Forced,
}

impl Origin {
    /// `heuristic`, `tuned` or `forced`.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Heuristic => "heuristic",
            Origin::Tuned => "tuned",
            Origin::Forced => "forced",
        }
    }
}

/// A conv step: its algorithm and the GEMM that does its multiply-adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvPlan {
    /// Direct, Winograd or split K.
    pub algo: ConvAlgo,
    /// The GEMM's kernel and grid.
    pub gemm: ConvConfig,
    /// Where the choice came from: the heuristic, a tuning table, or a forcing override.
    pub origin: Origin,
}

impl ConvConfig {
    /// A short description for plan tables, e.g. `register 32x8 1x1 nochk`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {}x{}",
            self.variant.name(),
            self.tile_m,
            4 * self.tile_n4
        );
        if self.variant == ConvVariant::Shared {
            s += &format!(" {}x{}", self.rows, 4 * self.cols4);
        } else if self.rows > 1 {
            s += &format!(" {}px", self.rows);
        }
        if self.gemms > 1 {
            s += &format!(" x{}", self.gemms);
        }
        if self.is_1x1 && self.variant != ConvVariant::Texture {
            s += " 1x1";
        }
        if !self.vec4 {
            // The texture variant packs such inputs to 4 channels per texel.
            s += if self.variant == ConvVariant::Texture {
                " packed"
            } else {
                " scalar"
            };
        }
        if !self.checks {
            s += " nochk";
        }
        if self.m_fastest {
            s += " m-fast";
        }
        s
    }
}

impl ConvPlan {
    /// `algo + gemm`, e.g. `F(4,3) texture 128x16 16px x36`.
    pub fn describe(&self) -> String {
        match self.algo {
            ConvAlgo::Direct => self.gemm.describe(),
            a => format!("{} {}", a.name(), self.gemm.describe()),
        }
    }

    /// Multiply-adds the GEMM executes (Winograd: `a^2 * tiles * cin * cout`), for one
    /// sub-batch; the transforms' few constant multiplies are not counted.
    pub fn macs_executed(&self) -> u64 {
        let g = &self.gemm;
        u64::from(g.m) * u64::from(g.n) * u64::from(g.k) * u64::from(g.gemms)
    }
}

impl ConvConfig {
    /// The shared variant's tile of this configuration.
    pub fn shared_tile(&self) -> SharedTile {
        SharedTile {
            wg_m: self.wg / (self.tile_n4 / self.cols4.max(1)).max(1),
            wg_n: self.tile_n4 / self.cols4.max(1),
            tm: self.rows,
            tn4: self.cols4,
            bk: self.k_step,
        }
    }
}
