//! Per-step kernel choice: the algorithm (direct or Winograd) of every conv, and which conv
//! kernel variant runs its GEMM with which tile configuration, decided at plan time from the
//! op's shapes and a [`DeviceProfile`]. Pure data: the session hands each step's
//! [`ConvPlan`] to the kernels, `resnet plan` prints it.
//!
//! Tile sizes are plan data here and pipeline override constants in the shaders
//! (`shaders/conv/*.wgsl`); the few numbers a shader needs as `const` (they size private or
//! workgroup arrays) are checked against these by a test that reads them from the parsed
//! module.

use crate::error::Error;
use crate::graph::{ConvOp, TensorInfo, pad4};
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
    pub const ALL: [ConvVariant; 4] = [
        ConvVariant::Shared,
        ConvVariant::Register,
        ConvVariant::Texture,
        ConvVariant::Subgroup,
    ];

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
    Direct,
    /// Input transform, `a^2` batched GEMMs, output transform (3x3, stride 1 only).
    Winograd(Tile),
}

impl ConvAlgo {
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Direct => "direct",
            ConvAlgo::Winograd(t) => t.name(),
        }
    }
}

/// Which convs take Winograd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WinogradPolicy {
    /// The plan's rule ([`winograd_tile`]).
    Auto,
    /// Every conv direct.
    Off,
    /// Every eligible conv with this tile.
    Force(Tile),
}

impl FromStr for WinogradPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(WinogradPolicy::Auto),
            "off" | "direct" | "none" => Ok(WinogradPolicy::Off),
            "f2" | "f(2,3)" => Ok(WinogradPolicy::Force(Tile::F2)),
            "f4" | "f(4,3)" => Ok(WinogradPolicy::Force(Tile::F4)),
            _ => Err(Error::Input(format!(
                "unknown Winograd policy `{s}`: use auto, off, f2 or f4"
            ))),
        }
    }
}

/// What the kernel choice depends on besides shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceProfile {
    /// Software rasteriser (lavapipe, WARP, SwiftShader): no workgroup memory, no barriers.
    pub software: bool,
    /// The texture variant may be chosen (software adapters, unless the plan's textures would
    /// exceed the device's largest texture).
    pub textures: bool,
    /// The subgroup variant can run: subgroups of 8 and 64-bit integers.
    pub subgroups: bool,
    /// Forces one variant for every conv GEMM it can run (`RESNET_CONV_VARIANT`, tests).
    pub forced: Option<ConvVariant>,
    /// Which convs take Winograd (`RESNET_WINOGRAD`).
    pub winograd: WinogradPolicy,
}

impl DeviceProfile {
    /// A hardware GPU with the default heuristic (what `resnet plan` shows).
    pub fn gpu() -> DeviceProfile {
        DeviceProfile {
            software: false,
            textures: false,
            subgroups: false,
            forced: None,
            winograd: WinogradPolicy::Auto,
        }
    }

    /// A software adapter (lavapipe) with the default heuristic.
    pub fn software() -> DeviceProfile {
        DeviceProfile {
            software: true,
            textures: true,
            subgroups: true,
            forced: None,
            winograd: WinogradPolicy::Auto,
        }
    }
}

impl Default for DeviceProfile {
    fn default() -> Self {
        DeviceProfile::gpu()
    }
}

/// Which kind of device a plan is made for (`--plan-for`, `RESNET_DEVICE_PROFILE`): lavapipe
/// can execute exactly the kernel mix and tiles a discrete GPU would get, so that mix is
/// tested end to end without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanFor {
    Gpu,
    Software,
}

impl PlanFor {
    pub fn profile(self) -> DeviceProfile {
        match self {
            PlanFor::Gpu => DeviceProfile::gpu(),
            PlanFor::Software => DeviceProfile::software(),
        }
    }
}

impl FromStr for PlanFor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "gpu" => Ok(PlanFor::Gpu),
            "software" | "cpu" => Ok(PlanFor::Software),
            _ => Err(Error::Input(format!(
                "unknown device profile `{s}`: use gpu or software"
            ))),
        }
    }
}

/// Register variant: invocations per workgroup; pixels and vec4 columns per invocation (the
/// last two are WGSL `const`s: they size private arrays).
pub const REGISTER_WG: u32 = 32;
pub const REGISTER_ROWS: u32 = 1;
pub const REGISTER_COLS4: u32 = 2;
/// Shared variant: pixels and vec4 columns per workgroup tile, K step (WGSL `const`s).
pub const SHARED_TILE_M: u32 = 64;
pub const SHARED_COLS4: u32 = 16;
pub const SHARED_K: u32 = 16;
/// Texture variant: invocations per workgroup (one SIMD group of lavapipe; 8, 32 and 64
/// measured alike, and the smallest wastes the least on partial tiles), vec4 columns per
/// invocation, and the most pixels per invocation (`TMAX` in the shader).
pub const TEXTURE_WG: u32 = 8;
pub const TEXTURE_COLS4: u32 = 4;
pub const TEXTURE_MAX_ROWS: u32 = 16;
/// Subgroup variant: pixels per lane and vec4 columns per workgroup (a sweep of resnet_v2_50 on
/// lavapipe: 4 x 4 best of 1..4 x 2..8), and their maxima (`BRMAX`, `BN4MAX`).
pub const SUBGROUP_ROWS: u32 = 4;
pub const SUBGROUP_COLS4: u32 = 4;
pub const SUBGROUP_MAX_ROWS: u32 = 4;
pub const SUBGROUP_MAX_COLS4: u32 = 8;
/// Fewer shared-variant workgroups than this leave a large GPU mostly idle (an H100 has 132
/// SMs): such layers take the smaller register tiles instead. Not yet timed on a real GPU.
pub const GPU_MIN_WORKGROUPS: usize = 128;

/// How one GEMM runs: the pipeline (variant + override constants) and its grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvConfig {
    pub variant: ConvVariant,
    /// Invocations per workgroup.
    pub wg: u32,
    /// Output pixels (GEMM rows) per workgroup tile.
    pub tile_m: u32,
    /// Output pixels per invocation (texture: TM; subgroup: per lane; 1 otherwise).
    pub rows: u32,
    /// vec4 output-channel columns per workgroup tile.
    pub tile_n4: u32,
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
    pub n: u32,
    pub k: u32,
    /// Workgroup tiles along N and in all (per GEMM of a batch).
    pub tiles_n: u32,
    pub tiles: u32,
    /// Independent GEMMs of this shape (Winograd: the a^2 points; 1 for a conv).
    pub batch: u32,
}

/// A conv step: its algorithm and the GEMM that does its multiply-adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvPlan {
    pub algo: ConvAlgo,
    pub gemm: ConvConfig,
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
        if self.rows > 1 {
            s += &format!(" {}px", self.rows);
        }
        if self.batch > 1 {
            s += &format!(" x{}", self.batch);
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
            ConvAlgo::Winograd(t) => format!("{} {}", t.name(), self.gemm.describe()),
        }
    }

    /// Multiply-adds the GEMM executes (Winograd: `a^2 * tiles * cin * cout`), for one
    /// sub-batch; the transforms' few constant multiplies are not counted.
    pub fn macs_executed(&self) -> u64 {
        let g = &self.gemm;
        u64::from(g.m) * u64::from(g.n) * u64::from(g.k) * u64::from(g.batch)
    }
}

/// The GEMM of an op, as the kernels see it.
#[derive(Clone, Copy, Debug)]
struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    cin: usize,
    is_1x1: bool,
    /// The variant that reads with 64-bit words can run it (4-aligned channel counts).
    words_ok: bool,
    /// Bytes of weights against bytes of input: walk M fastest when the weights dominate.
    m_fastest: bool,
}

/// The fewest GEMM rows (batch x tiles) for which Winograd is chosen: below, its batched GEMMs
/// are too small to keep the SIMD lanes busy (lavapipe, 3x3 7x7x512 at batch 1, 16 rows:
/// F(2,3) 10-12 GFLOP/s against 19 direct; at batch 2, 32 rows: 32 against 24).
pub const WINOGRAD_MIN_ROWS: usize = 32;

/// Winograd's tile for a conv on `device`, if it takes Winograd: 3x3, stride 1, pad 1,
/// channel counts multiples of 4 (vec4 transforms), no split output. The rule: F(4,3) on maps
/// of at least 20 pixels a side (56x56, 28x28: 4x fewer multiplies), F(2,3) on 6..19 (14x14,
/// 7x7: 2.25x, with less tile padding and a smaller error), direct below, and direct where
/// `batch` images give fewer than [`WINOGRAD_MIN_ROWS`] tiles.
///
/// With f16 storage (`f16`) the rule takes F(2,3) where it would take F(4,3): F(4,3)'s filter
/// transform, rounded to f16, costs up to ~1e-2 of relative error per layer (F(2,3): 6e-4).
pub fn winograd_tile(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    device: &DeviceProfile,
    f16: bool,
) -> Option<Tile> {
    let out = &tensors[op.output];
    let eligible = op.kh == 3
        && op.kw == 3
        && op.stride == 1
        && op.pad == 1
        && op.cin.is_multiple_of(4)
        && op.cout.is_multiple_of(4)
        && op.split.is_none();
    if !eligible {
        return None;
    }
    match device.winograd {
        WinogradPolicy::Off => None,
        WinogradPolicy::Force(t) => Some(t),
        WinogradPolicy::Auto => {
            let tile = match out.h.min(out.w) {
                20.. if !f16 => Tile::F4,
                6.. => Tile::F2,
                _ => return None,
            };
            let rows = batch.saturating_mul(tile.tiles(out.h) * tile.tiles(out.w));
            (rows >= WINOGRAD_MIN_ROWS).then_some(tile)
        }
    }
}

/// The algorithm ([`winograd_tile`], f32 storage) and GEMM configuration of `op` for `batch`
/// images on `device`.
pub fn choose_conv(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    device: &DeviceProfile,
) -> Result<ConvPlan, Error> {
    let algo = winograd_tile(op, tensors, batch, device, false)
        .map_or(ConvAlgo::Direct, ConvAlgo::Winograd);
    plan_conv(op, tensors, batch, device, algo)
}

/// The GEMM configuration of `op` computed by `algo` for `batch` images on `device`.
pub fn plan_conv(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    device: &DeviceProfile,
    algo: ConvAlgo,
) -> Result<ConvPlan, Error> {
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    let too_big = |what: &str| {
        Error::DeviceLimits(format!(
            "`{}` at batch {batch}: its GEMM {what} exceed the kernels' u32 range; use a \
             smaller batch",
            op.name
        ))
    };
    let words_ok = op.cin.is_multiple_of(4)
        && op.cout.is_multiple_of(4)
        && op.split.as_ref().is_none_or(|s| s.at.is_multiple_of(4));
    let gemm = match algo {
        ConvAlgo::Direct => Gemm {
            m: batch
                .checked_mul(to.h * to.w)
                .ok_or_else(|| too_big("rows"))?,
            n: op.cout,
            k: op.kh * op.kw * op.cin,
            batch: 1,
            cin: op.cin,
            is_1x1: op.kh == 1
                && op.kw == 1
                && op.stride == 1
                && op.pad == 0
                && (to.h, to.w) == (ti.h, ti.w),
            words_ok,
            m_fastest: op.kh * op.kw * op.cin * pad4(op.cout) > batch * ti.len(),
        },
        ConvAlgo::Winograd(t) => {
            let tiles = batch
                .checked_mul(t.tiles(to.h) * t.tiles(to.w))
                .ok_or_else(|| too_big("rows"))?;
            Gemm {
                m: tiles,
                n: op.cout,
                k: op.cin,
                batch: t.points(),
                cin: op.cin,
                is_1x1: true,
                words_ok,
                m_fastest: op.cin * op.cout > tiles * op.cin,
            }
        }
    };
    Ok(ConvPlan {
        algo,
        gemm: choose_gemm(&gemm, device).map_err(too_big)?,
    })
}

/// The variant and tiles of a GEMM on `device`.
///
/// Variant: software adapters get the texture variant (several times faster than buffer loads
/// on lavapipe) unless the GEMM has too few rows for its tiles (the classifier at small
/// batches), which take the register variant (faster than the shared one there: barriers
/// become coroutine switches); the subgroup variant when forced or without textures. On GPUs
/// the shared variant, except for GEMMs with fewer rows than a quarter of its 64-pixel tile
/// (e.g. the classifier at batch 1), where most of a shared tile would be idle, and for layers
/// whose 64x64 tiles would give fewer than [`GPU_MIN_WORKGROUPS`] workgroups (e.g. 7x7x512 at
/// batch 1: 8 tiles): the register variant's 32x8 tiles give those 16x more workgroups.
fn choose_gemm(g: &Gemm, device: &DeviceProfile) -> Result<ConvConfig, &'static str> {
    let coutp = pad4(g.n);
    // Workgroups of the shared variant, over all the GEMMs of a batch.
    let shared_tiles =
        g.m.div_ceil(SHARED_TILE_M as usize) * coutp.div_ceil(4 * SHARED_COLS4 as usize) * g.batch;
    let variant = match device.forced {
        Some(ConvVariant::Subgroup) if !(g.words_ok && device.subgroups) => ConvVariant::Register,
        Some(v) => v,
        None if device.software && device.textures && texture_efficiency(g.m) >= 0.5 => {
            ConvVariant::Texture
        }
        None if device.software && device.subgroups && g.words_ok && g.m >= 8 => {
            ConvVariant::Subgroup
        }
        None if device.software
            || g.m < SHARED_TILE_M as usize / 4
            || shared_tiles < GPU_MIN_WORKGROUPS =>
        {
            ConvVariant::Register
        }
        None => ConvVariant::Shared,
    };
    let (wg, rows, tile_n4) = match variant {
        ConvVariant::Register => (REGISTER_WG, REGISTER_ROWS, REGISTER_COLS4),
        ConvVariant::Shared => (256, 1, SHARED_COLS4),
        ConvVariant::Texture => (TEXTURE_WG, texture_rows(g.m), TEXTURE_COLS4),
        ConvVariant::Subgroup => (8, SUBGROUP_ROWS, SUBGROUP_COLS4),
    };
    let tile_m = match variant {
        ConvVariant::Shared => SHARED_TILE_M,
        _ => wg * rows,
    };
    let n_divides = g.n.is_multiple_of(4 * tile_n4 as usize);
    let m_divides = g.m.is_multiple_of(tile_m as usize);
    let k_divides = variant != ConvVariant::Shared || g.k.is_multiple_of(SHARED_K as usize);
    let fit = |v: usize, what| u32::try_from(v).map_err(|_| what);
    let tiles_n = fit(coutp / 4, "columns")?.div_ceil(tile_n4);
    let tiles = fit(
        g.m.div_ceil(tile_m as usize)
            .checked_mul(tiles_n as usize)
            .ok_or("workgroups")?,
        "workgroups",
    )?;
    // The texture and subgroup variants have one pipeline per tile shape: their 1x1 paths and
    // dropping their bounds checks measured no faster.
    let staged = matches!(variant, ConvVariant::Texture | ConvVariant::Subgroup);
    Ok(ConvConfig {
        variant,
        wg,
        tile_m,
        rows,
        tile_n4,
        vec4: g.cin.is_multiple_of(4),
        is_1x1: g.is_1x1,
        checks: staged || !(m_divides && n_divides && k_divides),
        m_fastest: g.m_fastest,
        m: fit(g.m, "rows")?,
        n: fit(g.n, "columns")?,
        k: fit(g.k, "depth")?,
        tiles_n,
        tiles,
        batch: fit(g.batch, "batch")?,
    })
}

/// Texture variant: pixels per invocation for a GEMM of `m` rows, from [`TEXTURE_ROWS`]:
/// the one with the most useful work per SIMD lane, counting the lanes that a partial last
/// group of [`TEXTURE_WG`] invocations leaves idle (7x7 maps at batch 1: 16 pixels per
/// invocation would keep 4 of 8 lanes busy on 49 rows).
pub fn texture_rows(m: usize) -> u32 {
    let score = |&(rows, rate): &(u32, f64)| rate * lane_use(m, rows);
    TEXTURE_ROWS
        .iter()
        .max_by(|a, b| score(a).total_cmp(&score(b)))
        .map_or(TEXTURE_MAX_ROWS, |&(rows, _)| rows)
}

/// The texture variant's pixel counts per invocation with their relative throughput on full
/// tiles (lavapipe, 14x14 and 7x7 ResNet layers: 7 rows reach ~0.84 of 16 rows' GFLOP/s,
/// fewer rows re-fetch each weight texel for fewer pixels). Two pipelines in all.
pub const TEXTURE_ROWS: [(u32, f64); 2] = [(TEXTURE_MAX_ROWS, 1.0), (7, 0.84)];

/// The share of the texture variant's row slots (groups of [`TEXTURE_WG`] invocations of
/// `rows` pixels) that hold one of the `m` GEMM rows.
fn lane_use(m: usize, rows: u32) -> f64 {
    let invocations = m.div_ceil(rows as usize);
    m as f64 / (invocations.div_ceil(TEXTURE_WG as usize) * (TEXTURE_WG * rows) as usize) as f64
}

/// [`lane_use`] at the chosen pixel count: under 0.5 the texture variant loses to the register
/// one (the classifier: M = batch rows, far fewer than one 8 x 7-pixel group).
pub fn texture_efficiency(m: usize) -> f64 {
    lane_use(m, texture_rows(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ConvOp, TensorInfo};

    fn conv(side: usize, c: usize, k: usize) -> (ConvOp, Vec<TensorInfo>) {
        let t = |name: &str| TensorInfo {
            name: name.into(),
            h: side,
            w: side,
            c,
        };
        let op = ConvOp {
            name: "c".into(),
            input: 0,
            output: 1,
            kh: k,
            kw: k,
            stride: 1,
            pad: k / 2,
            cin: c,
            cout: c,
            weight: vec![0.0; k * k * c * c],
            bias: vec![0.0; c],
            in_act: None,
            residual: None,
            relu: true,
            split: None,
        };
        (op, vec![t("in"), t("out")])
    }

    fn no_winograd(d: DeviceProfile) -> DeviceProfile {
        DeviceProfile {
            winograd: WinogradPolicy::Off,
            ..d
        }
    }

    #[test]
    fn small_late_layers_take_small_tiles_on_a_gpu() {
        let gpu = no_winograd(DeviceProfile::gpu());
        let (op, t) = conv(7, 512, 3);
        // batch 1: 1 x 8 shared tiles -> register tiles.
        let v = |b| choose_conv(&op, &t, b, &gpu).unwrap().gemm.variant;
        assert_eq!(v(1), ConvVariant::Register);
        // batch 32: 25 x 8 = 200 shared tiles -> shared.
        assert_eq!(v(32), ConvVariant::Shared);
    }

    #[test]
    fn texture_rows_keep_simd_lanes_busy() {
        // 56x56 and 28x28 maps (M 3136, 784) and 14x14 (196): 16 pixels per invocation;
        // 7x7 (49, and 392 at batch 8): 7, which fills 7 of 8 lanes.
        for (m, rows) in [(3136, 16), (784, 16), (196, 16), (49, 7), (392, 7)] {
            assert_eq!(texture_rows(m), rows, "M {m}");
        }
        let software = no_winograd(DeviceProfile::software());
        let (op, t) = conv(7, 512, 3);
        let cfg = choose_conv(&op, &t, 1, &software).unwrap().gemm;
        assert_eq!(
            (cfg.variant, cfg.rows, cfg.tile_m),
            (ConvVariant::Texture, 7, 56)
        );
        assert!(cfg.checks && !cfg.is_1x1);
        assert_eq!(cfg.tiles, 512 / 16);
        // Without textures software adapters take the subgroup variant, without subgroups
        // the register one.
        let no_textures = DeviceProfile {
            textures: false,
            ..software
        };
        let v = |d: &DeviceProfile| choose_conv(&op, &t, 1, d).unwrap().gemm.variant;
        assert_eq!(v(&no_textures), ConvVariant::Subgroup);
        let bare = DeviceProfile {
            subgroups: false,
            ..no_textures
        };
        assert_eq!(v(&bare), ConvVariant::Register);
    }

    #[test]
    fn winograd_takes_3x3_stride_1_convs_by_map_size() {
        let d = DeviceProfile::software();
        for (side, want) in [
            (56, Some(Tile::F4)),
            (28, Some(Tile::F4)),
            (14, Some(Tile::F2)),
            (7, Some(Tile::F2)),
            (4, None),
        ] {
            let (op, t) = conv(side, 64, 3);
            let plan = choose_conv(&op, &t, 2, &d).unwrap();
            let algo = want.map_or(ConvAlgo::Direct, ConvAlgo::Winograd);
            assert_eq!(plan.algo, algo, "{side}x{side}");
            if let Some(tile) = want {
                // The batched GEMM: tiles x cin x cout, a^2 of them.
                let tiles = 2 * tile.tiles(side) * tile.tiles(side);
                let g = plan.gemm;
                assert_eq!(
                    (g.m as usize, g.n, g.k, g.batch as usize),
                    (tiles, 64, 64, tile.points())
                );
                assert!(g.is_1x1);
            }
        }
        // 1x1, stride 2 and odd channel counts stay direct.
        let (op, t) = conv(56, 64, 1);
        assert_eq!(choose_conv(&op, &t, 1, &d).unwrap().algo, ConvAlgo::Direct);
        let (op, t) = conv(56, 6, 3);
        assert_eq!(choose_conv(&op, &t, 1, &d).unwrap().algo, ConvAlgo::Direct);
        let off = no_winograd(d);
        let (op, t) = conv(56, 64, 3);
        assert_eq!(
            choose_conv(&op, &t, 1, &off).unwrap().algo,
            ConvAlgo::Direct
        );
    }
}
