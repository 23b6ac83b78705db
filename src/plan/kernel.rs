//! Per-step kernel choice: which conv kernel variant and tile configuration runs each conv,
//! decided at plan time from the op's shapes and a [`DeviceProfile`]. Pure data: the session
//! hands each step's [`ConvConfig`] to the kernels, `resnet plan` prints it.

use crate::error::Error;
use crate::graph::{ConvOp, TensorInfo, pad4};
use std::str::FromStr;

/// Which conv kernel runs an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvVariant {
    /// Tiles of A and B staged in workgroup memory (`conv_shared`): what real GPUs need.
    Shared,
    /// Register tiling only, no workgroup memory or barriers (`conv_register`): fastest on
    /// software rasterisers such as lavapipe.
    Register,
    /// A and B read as texel fetches from textures (`conv_texture`), up to 16-pixel x
    /// 16-channel register tiles: several times faster than buffer loads on lavapipe.
    Texture,
}

impl ConvVariant {
    pub fn name(self) -> &'static str {
        match self {
            ConvVariant::Shared => "shared",
            ConvVariant::Register => "register",
            ConvVariant::Texture => "texture",
        }
    }
}

impl FromStr for ConvVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "shared" => Ok(ConvVariant::Shared),
            "register" => Ok(ConvVariant::Register),
            "texture" => Ok(ConvVariant::Texture),
            _ => Err(Error::Input(format!(
                "unknown conv variant `{s}`: use shared, register or texture"
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
    /// Forces one variant for every conv (`RESNET_CONV_VARIANT`, tests, benchmarks).
    pub forced: Option<ConvVariant>,
}

impl DeviceProfile {
    /// A hardware GPU with the default heuristic (what `resnet plan` shows).
    pub fn gpu() -> DeviceProfile {
        DeviceProfile {
            software: false,
            textures: false,
            forced: None,
        }
    }

    /// A software adapter with the default heuristic.
    pub fn software() -> DeviceProfile {
        DeviceProfile {
            software: true,
            textures: true,
            forced: None,
        }
    }
}

impl Default for DeviceProfile {
    fn default() -> Self {
        DeviceProfile::gpu()
    }
}

// Tile sizes; they must match conv.wgsl (checked by a unit test in gpu::kernels::conv). They
// are WGSL `const`s rather than overrides where they size private register arrays.
/// Register variant: pixels per invocation.
pub const RTM: u32 = 1;
/// Register variant: vec4 output columns per invocation.
pub const RTN4: u32 = 2;
/// Register variant: default invocations per workgroup (the `RWG` override).
pub const RWG: u32 = 32;
/// Shared variant: pixels per workgroup tile.
pub const SBM: u32 = 64;
/// Shared variant: vec4 output columns per workgroup tile.
pub const SBN4: u32 = 16;
/// Shared variant: K step.
pub const SBK: u32 = 16;
/// Texture variant: invocations per workgroup (one SIMD group of lavapipe; 8, 32 and 64
/// measured alike, and the smallest wastes the least on partial tiles).
pub const TWG: u32 = 8;
/// Texture variant: vec4 output columns per invocation.
pub const TN4: u32 = 4;
/// Texture variant: most pixels per invocation.
pub const TMAX: u32 = 16;
/// Fewer shared-variant workgroups than this leave a large GPU mostly idle (an H100 has 132
/// SMs): such layers take the smaller register tiles instead. Not yet timed on a real GPU.
pub const GPU_MIN_WORKGROUPS: usize = 128;

/// How one conv step runs: the pipeline (variant + override constants) and its grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvConfig {
    pub variant: ConvVariant,
    /// Invocations per workgroup.
    pub wg: u32,
    /// Output pixels (GEMM rows) per workgroup tile.
    pub tile_m: u32,
    /// Output pixels per invocation (texture variant; 1 for the others).
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
    /// GEMM shape: M = batch * OH * OW, N = cout, K = KH * KW * Cin.
    pub m: u32,
    pub n: u32,
    pub k: u32,
    /// Workgroup tiles along N and in all.
    pub tiles_n: u32,
    pub tiles: u32,
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
        if self.is_1x1 {
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

/// The kernel configuration of `op` for `batch` images on `device`.
///
/// Variant: software adapters get the texture variant (measured several times faster than
/// buffer loads on lavapipe) unless the GEMM has too few rows for its tiles (the classifier at
/// small batches), which take the register variant (faster than the shared one there:
/// barriers become coroutine switches). On GPUs the shared
/// variant, except for GEMMs with fewer rows than a quarter of its 64-pixel tile (e.g. the
/// classifier at batch 1), where most of a shared tile would be idle, and for layers whose
/// 64x64 tiles would give fewer than [`GPU_MIN_WORKGROUPS`] workgroups (e.g. 7x7x512 at batch
/// 1: 8 tiles): the register variant's 32x8 tiles give those 16x more workgroups to spread over
/// the GPU.
pub fn choose_conv(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    device: &DeviceProfile,
) -> Result<ConvConfig, Error> {
    let ti = &tensors[op.input];
    let to = &tensors[op.output];
    // Every GEMM figure goes to the kernels as a u32; the arena's addressing limit keeps
    // planned sub-batches within it, so this only fails for a batch no device could run.
    let fit = |v: Option<usize>, what: &str| {
        v.and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
            Error::DeviceLimits(format!(
                "`{}` at batch {batch}: its GEMM {what} exceed the kernels' u32 range; use a \
                 smaller batch",
                op.name
            ))
        })
    };
    let m = fit(batch.checked_mul(to.h * to.w), "rows")? as usize;
    let k = op.kh * op.kw * op.cin;
    let coutp = pad4(op.cout);
    let shared_tiles = m.div_ceil(SBM as usize) * coutp.div_ceil(4 * SBN4 as usize);
    let variant = match device.forced {
        Some(v) => v,
        None if device.software && device.textures && texture_efficiency(m) >= 0.5 => {
            ConvVariant::Texture
        }
        None if device.software || m < SBM as usize / 4 || shared_tiles < GPU_MIN_WORKGROUPS => {
            ConvVariant::Register
        }
        None => ConvVariant::Shared,
    };
    let (wg, rows, tile_n4) = match variant {
        ConvVariant::Register => (RWG, RTM, RTN4),
        ConvVariant::Shared => (256, 1, SBN4),
        ConvVariant::Texture => (TWG, texture_rows(m), TN4),
    };
    let tile_m = match variant {
        ConvVariant::Shared => SBM,
        _ => wg * rows,
    };
    let n_divides = op.cout.is_multiple_of(4 * tile_n4 as usize);
    let m_divides = m.is_multiple_of(tile_m as usize);
    let k_divides = variant != ConvVariant::Shared || k.is_multiple_of(SBK as usize);
    let tiles_n = fit(Some(coutp / 4), "columns")?.div_ceil(tile_n4);
    let tiles = fit(
        (m.div_ceil(tile_m as usize)).checked_mul(tiles_n as usize),
        "workgroups",
    )?;
    // The texture variant has one pipeline per pixel count: its 1x1 path and dropping its
    // bounds checks measured no faster, and each of its pipelines takes lavapipe ~25 s to
    // compile on a cold shader cache.
    let texture = variant == ConvVariant::Texture;
    Ok(ConvConfig {
        variant,
        wg,
        tile_m,
        rows,
        tile_n4,
        vec4: op.cin.is_multiple_of(4),
        is_1x1: !texture
            && op.kh == 1
            && op.kw == 1
            && op.stride == 1
            && op.pad == 0
            && (to.h, to.w) == (ti.h, ti.w),
        checks: texture || !(m_divides && n_divides && k_divides),
        m_fastest: k * coutp > batch * ti.len(),
        m: m as u32,
        n: fit(Some(op.cout), "columns")?,
        k: fit(Some(k), "depth")?,
        tiles_n,
        tiles,
    })
}

/// Texture variant: pixels per invocation for a GEMM of `m` rows, from [`TEXTURE_ROWS`]:
/// the one with the most useful work per SIMD lane, counting the lanes that a partial last
/// group of [`TWG`] invocations leaves idle (7x7 maps at batch 1: 16 pixels per invocation
/// would keep 4 of 8 lanes busy on 49 rows).
pub fn texture_rows(m: usize) -> u32 {
    let score = |&(rows, rate): &(u32, f64)| rate * lane_use(m, rows);
    TEXTURE_ROWS
        .iter()
        .max_by(|a, b| score(a).total_cmp(&score(b)))
        .map_or(TMAX, |&(rows, _)| rows)
}

/// The texture variant's pixel counts per invocation with their relative throughput on full
/// tiles (lavapipe, 14x14 and 7x7 ResNet layers: 7 rows reach ~0.84 of 16 rows' GFLOP/s,
/// fewer rows re-fetch each weight texel for fewer pixels). Two pipelines in all.
pub const TEXTURE_ROWS: [(u32, f64); 2] = [(TMAX, 1.0), (7, 0.84)];

/// The share of the texture variant's row slots (groups of [`TWG`] invocations of `rows`
/// pixels) that hold one of the `m` GEMM rows.
fn lane_use(m: usize, rows: u32) -> f64 {
    let invocations = m.div_ceil(rows as usize);
    m as f64 / (invocations.div_ceil(TWG as usize) * (TWG * rows) as usize) as f64
}

/// [`lane_use`] at the chosen pixel count: under 0.5 the texture variant loses to the register
/// one (the classifier: M = batch rows, far fewer than one 8 x 7-pixel group).
pub fn texture_efficiency(m: usize) -> f64 {
    lane_use(m, texture_rows(m))
}

#[cfg(test)]
mod few_workgroups {
    use super::*;
    use crate::graph::{ConvOp, TensorInfo};

    fn conv_7x7(c: usize) -> (ConvOp, Vec<TensorInfo>) {
        let t = |name: &str| TensorInfo {
            name: name.into(),
            h: 7,
            w: 7,
            c,
        };
        let op = ConvOp {
            name: "c".into(),
            input: 0,
            output: 1,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
            cin: c,
            cout: c,
            weight: vec![0.0; 9 * c * c],
            bias: vec![0.0; c],
            in_act: None,
            residual: None,
            relu: true,
            split: None,
        };
        (op, vec![t("in"), t("out")])
    }

    #[test]
    fn small_late_layers_take_small_tiles_on_a_gpu() {
        let gpu = DeviceProfile::gpu();
        let (op, t) = conv_7x7(512);
        // batch 1: 1 x 8 shared tiles -> register tiles.
        assert_eq!(
            choose_conv(&op, &t, 1, &gpu).unwrap().variant,
            ConvVariant::Register
        );
        // batch 32: 25 x 8 = 200 shared tiles -> shared.
        assert_eq!(
            choose_conv(&op, &t, 32, &gpu).unwrap().variant,
            ConvVariant::Shared
        );
    }

    #[test]
    fn texture_rows_keep_simd_lanes_busy() {
        // 56x56 and 28x28 maps (M 3136, 784) and 14x14 (196): 16 pixels per invocation;
        // 7x7 (49, and 392 at batch 8): 7, which fills 7 of 8 lanes.
        for (m, rows) in [(3136, 16), (784, 16), (196, 16), (49, 7), (392, 7)] {
            assert_eq!(texture_rows(m), rows, "M {m}");
        }
        let software = DeviceProfile::software();
        let (op, t) = conv_7x7(512);
        let cfg = choose_conv(&op, &t, 1, &software).unwrap();
        assert_eq!(
            (cfg.variant, cfg.rows, cfg.tile_m),
            (ConvVariant::Texture, 7, 56)
        );
        assert!(cfg.checks && !cfg.is_1x1);
        assert_eq!(cfg.tiles, 512 / 16);
        // Without textures (too large for the device) software adapters use registers.
        let no_textures = DeviceProfile {
            textures: false,
            ..software
        };
        assert_eq!(
            choose_conv(&op, &t, 1, &no_textures).unwrap().variant,
            ConvVariant::Register
        );
    }
}
