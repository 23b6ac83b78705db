//! The conv variants' tile configurations: plan data here, pipeline override constants in the
//! shaders (`shaders/conv/*.wgsl`). The few numbers a shader needs as `const` (they size
//! private or workgroup arrays) are checked against these by `tests/shaders.rs`, which reads
//! them from the parsed modules.

/// Register variant: invocations per workgroup; pixels and vec4 columns per invocation (the
/// last two are WGSL `const`s: they size private arrays).
pub const REGISTER_WG: u32 = 32;

/// Register variant: pixels per invocation.
pub const REGISTER_ROWS: u32 = 1;

/// Register variant: vec4 columns per invocation.
pub const REGISTER_COLS4: u32 = 2;

/// A workgroup-memory tile: WG_M x WG_N invocations of TM pixels x TN4 vec4 columns each, a
/// BK-deep K step (the shader's override constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SharedTile {
    /// Invocations along M.
    pub wg_m: u32,
    /// Invocations along N.
    pub wg_n: u32,
    /// Pixels per invocation.
    pub tm: u32,
    /// vec4 columns per invocation.
    pub tn4: u32,
    /// K per staged step.
    pub bk: u32,
}

impl SharedTile {
    /// Pixels (GEMM rows) per tile.
    pub const fn bm(self) -> u32 {
        self.wg_m * self.tm
    }
    /// vec4 columns per tile.
    pub const fn bn4(self) -> u32 {
        self.wg_n * self.tn4
    }
    /// Invocations per workgroup.
    pub const fn invocations(self) -> u32 {
        self.wg_m * self.wg_n
    }
}

/// The shared variant's tiles, largest first: the heuristic takes the first that gives a GPU
/// [`GPU_MIN_WORKGROUPS`]; `resnet tune` times them all. Each stays within the shader's
/// array sizes (TM <= 8, TN4 <= 2, BK <= 16, BM <= 128, BN <= 128, at most 4 staged vec4 of
/// each operand per invocation: `tests/shaders.rs` checks) and 16 KiB of workgroup memory.
pub const SHARED_TILES: [SharedTile; 5] = [
    SharedTile {
        wg_m: 16,
        wg_n: 16,
        tm: 8,
        tn4: 2,
        bk: 16,
    }, // 128 x 128, 8 x 8 per invocation
    SharedTile {
        wg_m: 16,
        wg_n: 16,
        tm: 8,
        tn4: 1,
        bk: 16,
    }, // 128 x 64
    SharedTile {
        wg_m: 16,
        wg_n: 16,
        tm: 4,
        tn4: 2,
        bk: 16,
    }, // 64 x 128
    SharedTile {
        wg_m: 16,
        wg_n: 16,
        tm: 4,
        tn4: 1,
        bk: 16,
    }, // 64 x 64, 4 x 4 per invocation
    SharedTile {
        wg_m: 8,
        wg_n: 16,
        tm: 4,
        tn4: 1,
        bk: 16,
    }, // 32 x 64
];

/// The shader's array bounds (`TM_MAX`, `TN4_MAX`, `BK_MAX`, `BM_MAX`, `BN4_MAX`, `STAGE_MAX`).
pub const SHARED_MAX: (u32, u32, u32, u32, u32, u32) = (8, 2, 16, 128, 32, 4);

/// Split K: at least this deep a GEMM (7x7x512 3x3 convs: 4608), at most this many slices,
/// each at least this many K steps deep.
pub const SPLIT_K_MIN_K: usize = 1024;

/// Split K: the most slices.
pub const SPLIT_K_MAX: u32 = 16;

/// Split K: the fewest K steps per slice.
pub const SPLIT_K_MIN_STEPS: u32 = 4;

/// Texture variant: invocations per workgroup (one SIMD group of lavapipe; 8, 32 and 64
/// measured alike, and the smallest wastes the least on partial tiles), vec4 columns per
/// invocation, and the most pixels per invocation (`TMAX` in the shader).
pub const TEXTURE_WG: u32 = 8;

/// Texture variant: vec4 columns per invocation.
pub const TEXTURE_COLS4: u32 = 4;

/// Texture variant: the most pixels per invocation (`TMAX`).
pub const TEXTURE_MAX_ROWS: u32 = 16;

/// Subgroup variant: pixels per lane and vec4 columns per workgroup (a sweep of resnet_v2_50 on
/// lavapipe: 4 x 4 best of 1..4 x 2..8), and their maxima (`BRMAX`, `BN4MAX`).
pub const SUBGROUP_ROWS: u32 = 4;

/// Subgroup variant: vec4 columns per workgroup.
pub const SUBGROUP_COLS4: u32 = 4;

/// Subgroup variant: the most pixels per lane (`BRMAX`).
pub const SUBGROUP_MAX_ROWS: u32 = 4;

/// Subgroup variant: the most vec4 columns per workgroup (`BN4MAX`).
pub const SUBGROUP_MAX_COLS4: u32 = 8;

/// Fewer shared-variant workgroups than this leave a large GPU mostly idle (an H100 has 132
/// SMs): such layers take a smaller shared tile, split K ([`split_k`](super::kernel::split_k)), or the register
/// variant's small tiles. Not yet timed on a real GPU (`resnet tune` measures the choice).
pub const GPU_MIN_WORKGROUPS: usize = 128;
