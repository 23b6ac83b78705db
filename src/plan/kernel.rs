//! The heuristic: per conv, the algorithm (direct, Winograd or split K) and which kernel
//! variant runs its GEMM with which tile configuration, decided at plan time from the op's
//! shapes and a [`DeviceProfile`]. What it decides is [`crate::plan::variant`]'s data, with
//! the tiles of [`crate::plan::tiles`]; both are re-exported here.

pub use super::device::{DeviceProfile, PlanFor, WinogradPolicy};
pub use super::tiles::*;
pub use super::variant::{ConvAlgo, ConvConfig, ConvPlan, ConvVariant, Origin};
use crate::error::Error;
use crate::graph::{ConvOp, TensorInfo, pad4};
use crate::winograd::Tile;

/// The GEMM of an op, as the kernels see it.
#[derive(Clone, Copy, Debug)]
struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    gemms: usize,
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

/// The heuristic's algorithm for `op` at `batch` images on `device`: Winograd where
/// [`winograd_tile`] takes it (`f16`: f16 storage), split K where [`split_k`] does, else direct.
pub fn choose_algo(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    device: &DeviceProfile,
    f16: bool,
) -> ConvAlgo {
    if let Some(t) = winograd_tile(op, tensors, batch, device, f16) {
        return ConvAlgo::Winograd(t);
    }
    match split_k(op, tensors, batch, device) {
        Some(s) => ConvAlgo::SplitK(s),
        None => ConvAlgo::Direct,
    }
}

/// The algorithm ([`choose_algo`], f32 storage) and GEMM configuration of `op` for `batch`
/// images on `device`: the heuristic alone, for the tests of its rules.
#[cfg(test)]
fn choose_conv(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    device: &DeviceProfile,
) -> Result<ConvPlan, Error> {
    let algo = choose_algo(op, tensors, batch, device, false);
    plan_conv(op, tensors, batch, device, algo)
}

/// Split K for a direct conv on a GPU whose output has too few tiles to fill it: even the
/// smallest shared tile gives fewer than [`GPU_MIN_WORKGROUPS`] workgroups (7x7x512 at batch
/// 1: 16), but K is deep (>= [`SPLIT_K_MIN_K`]). The slices bring the workgroups to the
/// minimum, each at least [`SPLIT_K_MIN_STEPS`] K steps deep, at most [`SPLIT_K_MAX`].
/// GEMVs (fewer than 16 rows: the classifier at small batches) keep the register variant.
pub fn split_k(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    device: &DeviceProfile,
) -> Option<u32> {
    if device.software || device.forced.is_some_and(|v| v != ConvVariant::Shared) {
        return None;
    }
    let out = &tensors[op.output];
    let m = batch.checked_mul(out.h * out.w)?;
    let k = op.kh * op.kw * op.cin;
    if m < 16 || k < SPLIT_K_MIN_K {
        return None;
    }
    let tile = SHARED_TILES[SHARED_TILES.len() - 1];
    let tiles = shared_workgroups(m, op.cout, 1, tile);
    if tiles >= GPU_MIN_WORKGROUPS {
        return None;
    }
    let most = (k / (tile.bk * SPLIT_K_MIN_STEPS) as usize).min(SPLIT_K_MAX as usize);
    let splits = GPU_MIN_WORKGROUPS.div_ceil(tiles).min(most);
    (splits >= 2).then_some(splits as u32)
}

/// Workgroups of `tile` over `batch` GEMMs of M x N.
fn shared_workgroups(m: usize, n: usize, batch: usize, tile: SharedTile) -> usize {
    m.div_ceil(tile.bm() as usize) * pad4(n).div_ceil(4 * tile.bn4() as usize) * batch
}

/// K per split-K slice: the K steps spread evenly, whole steps of `bk` each.
pub fn split_k_chunk(k: u32, splits: u32, bk: u32) -> u32 {
    k.div_ceil(bk).div_ceil(splits.max(1)) * bk
}

/// The GEMM configuration of `op` computed by `algo` for `batch` images on `device`.
pub fn plan_conv(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    device: &DeviceProfile,
    algo: ConvAlgo,
) -> Result<ConvPlan, Error> {
    plan_conv_tiled(op, tensors, batch, device, algo, None)
}

/// As [`plan_conv`], with `tile` for the shared variant where it runs (split K always does)
/// instead of the heuristic's: how tests and the tuner name every configuration.
pub fn plan_conv_tiled(
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
    device: &DeviceProfile,
    algo: ConvAlgo,
    tile: Option<SharedTile>,
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
        ConvAlgo::Direct | ConvAlgo::SplitK(_) => Gemm {
            m: batch
                .checked_mul(to.h * to.w)
                .ok_or_else(|| too_big("rows"))?,
            n: op.cout,
            k: op.kh * op.kw * op.cin,
            gemms: 1,
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
                gemms: t.points(),
                cin: op.cin,
                is_1x1: true,
                words_ok,
                m_fastest: op.cin * op.cout > tiles * op.cin,
            }
        }
    };
    let gemm = match algo {
        ConvAlgo::SplitK(splits) => {
            let tile = tile.unwrap_or(SHARED_TILES[SHARED_TILES.len() - 1]);
            let mut cfg = shared_config(&gemm, tile).map_err(too_big)?;
            cfg.splits = splits.max(1);
            cfg
        }
        _ => {
            let cfg = choose_gemm(&gemm, device).map_err(too_big)?;
            match tile {
                Some(t) if cfg.variant == ConvVariant::Shared => {
                    shared_config(&gemm, t).map_err(too_big)?
                }
                _ => cfg,
            }
        }
    };
    let origin = if device.forced.is_some() || device.winograd != WinogradPolicy::Auto {
        Origin::Forced
    } else {
        Origin::Heuristic
    };
    Ok(ConvPlan { algo, gemm, origin })
}

/// `plan`, made for another number of images, at `batch` images: the same pipeline (the
/// algorithm, variant, tile and pixels per invocation, so a tuned choice holds and no new
/// shader variant is needed for it) with that size's rows and grid. The bounds checks stay
/// on where they were and come on where the tiles no longer divide the rows: a batched GEMM
/// (Winograd's points, split K's slices) strides its operands by M, so rows past M would
/// land in the next GEMM's.
pub fn conv_for_batch(
    plan: &ConvPlan,
    op: &ConvOp,
    tensors: &[TensorInfo],
    batch: usize,
) -> Result<ConvPlan, Error> {
    let to = &tensors[op.output];
    let per_image = match plan.algo {
        ConvAlgo::Direct | ConvAlgo::SplitK(_) => to.h * to.w,
        ConvAlgo::Winograd(t) => t.tiles(to.h) * t.tiles(to.w),
    };
    let too_big = || {
        Error::DeviceLimits(format!(
            "`{}` at batch {batch}: its GEMM rows exceed the kernels' u32 range; use a \
             smaller batch",
            op.name
        ))
    };
    let m = batch.checked_mul(per_image).ok_or_else(too_big)?;
    let mut gemm = plan.gemm;
    gemm.m = u32::try_from(m).map_err(|_| too_big())?;
    gemm.tiles = gemm
        .m
        .div_ceil(gemm.tile_m)
        .checked_mul(gemm.tiles_n)
        .ok_or_else(too_big)?;
    gemm.checks |= !gemm.m.is_multiple_of(gemm.tile_m);
    Ok(ConvPlan { gemm, ..*plan })
}

/// The variant and tiles of a GEMM on `device`.
///
/// Variant: software adapters get the texture variant (several times faster than buffer loads
/// on lavapipe) unless the GEMM has too few rows for its tiles (the classifier at small
/// batches), which take the register variant (faster than the shared one there: barriers
/// become coroutine switches); the subgroup variant when forced or without textures. On GPUs
/// the shared variant with the largest of [`SHARED_TILES`] that still gives
/// [`GPU_MIN_WORKGROUPS`] workgroups, except for GEMVs (fewer than 16 rows: the classifier at
/// small batches) and layers too small for any of them (which [`split_k`] splits where K is
/// deep): the register variant's 32x8 tiles give those many more workgroups.
fn choose_gemm(g: &Gemm, device: &DeviceProfile) -> Result<ConvConfig, &'static str> {
    let shared = SHARED_TILES
        .iter()
        .copied()
        .find(|&t| shared_workgroups(g.m, g.n, g.gemms, t) >= GPU_MIN_WORKGROUPS);
    let variant = match device.forced {
        Some(ConvVariant::Subgroup) if !(g.words_ok && device.subgroups) => ConvVariant::Register,
        Some(v) => v,
        None if device.software && device.textures && texture_efficiency(g.m) >= 0.5 => {
            ConvVariant::Texture
        }
        None if device.software && device.subgroups && g.words_ok && g.m >= 8 => {
            ConvVariant::Subgroup
        }
        None if device.software || g.m < 16 || shared.is_none() => ConvVariant::Register,
        None => ConvVariant::Shared,
    };
    if variant == ConvVariant::Shared {
        // Forced onto a layer too small for the minimum: the smallest tile.
        return shared_config(g, shared.unwrap_or(SHARED_TILES[SHARED_TILES.len() - 1]));
    }
    let (wg, rows, tile_n4) = match variant {
        ConvVariant::Register => (REGISTER_WG, REGISTER_ROWS, REGISTER_COLS4),
        ConvVariant::Texture => (TEXTURE_WG, texture_rows(g.m), TEXTURE_COLS4),
        ConvVariant::Subgroup => (8, SUBGROUP_ROWS, SUBGROUP_COLS4),
        ConvVariant::Shared => unreachable!("handled above"),
    };
    let tile_m = wg * rows;
    let n_divides = g.n.is_multiple_of(4 * tile_n4 as usize);
    let m_divides = g.m.is_multiple_of(tile_m as usize);
    let fit = |v: usize, what| u32::try_from(v).map_err(|_| what);
    let (tiles_n, tiles) = grid(g, tile_m, tile_n4)?;
    // The texture and subgroup variants have one pipeline per tile shape: their 1x1 paths and
    // dropping their bounds checks measured no faster.
    let staged = matches!(variant, ConvVariant::Texture | ConvVariant::Subgroup);
    Ok(ConvConfig {
        variant,
        wg,
        tile_m,
        rows,
        tile_n4,
        cols4: match variant {
            ConvVariant::Register => REGISTER_COLS4,
            _ => TEXTURE_COLS4.min(tile_n4),
        },
        k_step: 0,
        splits: 1,
        vec4: g.cin.is_multiple_of(4),
        is_1x1: g.is_1x1,
        checks: staged || !(m_divides && n_divides),
        m_fastest: g.m_fastest,
        m: fit(g.m, "rows")?,
        n: fit(g.n, "columns")?,
        k: fit(g.k, "depth")?,
        tiles_n,
        tiles,
        gemms: fit(g.gemms, "GEMM count")?,
    })
}

/// Workgroup tiles of `tile_m` rows x `tile_n4` vec4 columns over `g`: along N, and in all.
fn grid(g: &Gemm, tile_m: u32, tile_n4: u32) -> Result<(u32, u32), &'static str> {
    let fit = |v: usize, what| u32::try_from(v).map_err(|_| what);
    let tiles_n = fit(pad4(g.n) / 4, "columns")?.div_ceil(tile_n4);
    let tiles = fit(
        g.m.div_ceil(tile_m as usize)
            .checked_mul(tiles_n as usize)
            .ok_or("workgroups")?,
        "workgroups",
    )?;
    Ok((tiles_n, tiles))
}

/// The shared variant's configuration of `g` with `tile`.
fn shared_config(g: &Gemm, tile: SharedTile) -> Result<ConvConfig, &'static str> {
    let fit = |v: usize, what| u32::try_from(v).map_err(|_| what);
    let (bm, bn4) = (tile.bm(), tile.bn4());
    let (tiles_n, tiles) = grid(g, bm, bn4)?;
    let divides = g.m.is_multiple_of(bm as usize)
        && g.n.is_multiple_of(4 * bn4 as usize)
        && g.k.is_multiple_of(tile.bk as usize);
    Ok(ConvConfig {
        variant: ConvVariant::Shared,
        wg: tile.invocations(),
        tile_m: bm,
        rows: tile.tm,
        tile_n4: bn4,
        cols4: tile.tn4,
        k_step: tile.bk,
        splits: 1,
        vec4: g.cin.is_multiple_of(4),
        is_1x1: g.is_1x1,
        checks: !divides,
        m_fastest: g.m_fastest,
        m: fit(g.m, "rows")?,
        n: fit(g.n, "columns")?,
        k: fit(g.k, "depth")?,
        tiles_n,
        tiles,
        gemms: fit(g.gemms, "GEMM count")?,
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

/// `lane_use` at the chosen pixel count: under 0.5 the texture variant loses to the register
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
        let plan = |b| choose_conv(&op, &t, b, &gpu).unwrap();
        // batch 1: M 49 gives 2 x 8 tiles of 32x64 even at the smallest shared tile, but K is
        // 4608 deep: split K into 8 slices (128 workgroups), each 576 deep.
        let one = plan(1);
        assert_eq!(
            (one.algo, one.gemm.variant),
            (ConvAlgo::SplitK(8), ConvVariant::Shared)
        );
        // batch 32: M 1568 fills the GPU with direct shared tiles.
        let many = plan(32);
        assert_eq!(
            (many.algo, many.gemm.variant),
            (ConvAlgo::Direct, ConvVariant::Shared)
        );
        // A shallow K (1x1 over 64 channels) is never split: register tiles.
        let (op, t) = conv(7, 64, 1);
        let shallow = choose_conv(&op, &t, 1, &gpu).unwrap();
        assert_eq!(
            (shallow.algo, shallow.gemm.variant),
            (ConvAlgo::Direct, ConvVariant::Register)
        );
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
                    (g.m as usize, g.n, g.k, g.gemms as usize),
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
