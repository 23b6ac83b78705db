//! Every GPU kernel against the CPU reference (`resnet_wgpu::cpu`) over a grid of shapes: each
//! conv variant directly and as the batched GEMM of Winograd F(2,3) and F(4,3), in f32 and with
//! f16 storage, and the pools.
//!
//! Tolerances, `|gpu - ref| <= tol * max(1, max |ref|)` per output tensor (NaN-aware):
//! * f32, direct: 1e-4 (f32 accumulation in another order than the f64 reference);
//! * f32, Winograd: 1e-4 for F(2,3), 3e-4 for F(4,3) (its transforms' entries up to 8 cost
//!   about a decimal digit; measured worst 4e-6 and 5e-5);
//! * f16 storage: 4e-3 against the reference run on the f16-rounded inputs and weights (the
//!   output's own rounding is 2^-11 = 4.9e-4 relative; Winograd's U is rounded after the
//!   transform, not before; the transformed tiles stay f32), 2e-2 for F(4,3), whose rounded U
//!   the output transform amplifies (measured 1.3e-2 on 4 input channels: the reason f16 plans
//!   take F(2,3) only);
//! * max pool: exact.
//!
//! Like the planner, every tensor sits at its own non-zero, 256-byte-aligned offset of one arena
//! and the op's constants at a non-zero offset of a weights buffer; all other bytes of both are
//! 0xFF (NaN as f32 and as f16), and everything outside the op's outputs (and a Winograd conv's
//! scratch) must come back bit-identical, so out-of-bounds reads (NaN in an output) and writes
//! (a changed byte elsewhere) both fail.
//!
//! These tests need a wgpu adapter and FAIL without one (lavapipe is enough).

mod common;

use resnet_wgpu::gpu::kernels::{Kernels, Resources, texture};
use resnet_wgpu::gpu::{GpuContext, encode_sequence};
use resnet_wgpu::graph::{
    BnRelu, BnReluOp, ConvOp, GlobalAvgPoolOp, MaxPoolOp, Op, PadValue, Residual, SplitOutput,
    TensorInfo,
};
use resnet_wgpu::plan::kernel::{
    ConvAlgo, DeviceProfile, SHARED_TILES, SharedTile, WinogradPolicy, plan_conv, plan_conv_tiled,
};
use resnet_wgpu::plan::launch::conv::ConvOperands;
use resnet_wgpu::plan::launch::{self, Emitter, conv, elementwise, pool};
use resnet_wgpu::plan::{
    ConvVariant, Dtype, Interval, Launch, Placement, Precision, WeightSlot, scratch_for,
};
use resnet_wgpu::winograd::Tile;
use std::collections::BTreeMap;
use std::sync::OnceLock;

struct Gpu {
    ctx: GpuContext,
    kernels: Kernels,
    /// What the device can run: the subgroup variant needs subgroups of 8 and int64.
    subgroups: bool,
}

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let ctx = common::gpu();
        let kernels = Kernels::new(&ctx.device);
        let subgroups = resnet_wgpu::gpu::kernels::adapter_profile(&ctx.device).subgroups;
        Gpu {
            ctx,
            kernels,
            subgroups,
        }
    })
}

/// The conv variants the tests force on this adapter: all four on a software adapter (the
/// kernels' own profile takes the subgroup variant there, and lavapipe has what it needs),
/// the other three on a GPU, where the kernels never plan the subgroup variant
/// (`kernels::adapter_profile`).
fn variants() -> Vec<ConvVariant> {
    let software = gpu().ctx.is_software();
    ConvVariant::ALL
        .into_iter()
        .filter(|&v| software || v != ConvVariant::Subgroup)
        .collect()
}

/// Panics, saying what the adapter lacks, unless it can run the subgroup variant: a test that
/// forces it must run it, not fall back.
fn require_subgroups() {
    let g = gpu();
    if g.subgroups {
        return;
    }
    let (_, _, need) = resnet_wgpu::gpu::kernels::modules()
        .into_iter()
        .find(|(name, _, _)| name == "ConvSubgroup")
        .expect("the subgroup conv module");
    let mut missing = Vec::new();
    if !g.ctx.is_software() {
        missing.push(format!(
            "a software adapter (this is a {:?})",
            g.ctx.info.device_type
        ));
    }
    let lacking = need - g.ctx.features;
    if !lacking.is_empty() {
        let names: Vec<&str> = lacking.iter_names().map(|(name, _)| name).collect();
        missing.push(format!("device features {}", names.join(", ")));
    }
    if g.ctx.info.subgroup_min_size < 8 {
        missing.push(format!(
            "subgroups of at least 8 lanes (its smallest: {})",
            g.ctx.info.subgroup_min_size
        ));
    }
    panic!(
        "the subgroup conv variant cannot run on adapter {}: it lacks {}",
        g.ctx.info.name,
        if missing.is_empty() {
            "what `kernels::adapter_profile` asks for".to_string()
        } else {
            missing.join(", ")
        }
    );
}

/// Conv runs per (variant, algorithm, precision), compared exactly with what a test expects.
#[derive(Default)]
struct Runs(BTreeMap<(&'static str, String, &'static str), usize>);

fn precision_name(f16: bool) -> &'static str {
    if f16 { "f16" } else { "f32" }
}

impl Runs {
    fn add(&mut self, mode: Mode) {
        let key = (
            mode.variant.name(),
            mode.algo.name(),
            precision_name(mode.f16),
        );
        *self.0.entry(key).or_default() += 1;
    }

    /// Panics unless the runs are exactly `expected` (variant, algorithm, f16, runs); pairs
    /// expected to run 0 times must not have run.
    #[track_caller]
    fn assert_exactly(&self, expected: &[(ConvVariant, ConvAlgo, bool, usize)]) {
        let mut want = BTreeMap::new();
        for &(variant, algo, f16, n) in expected {
            if n > 0 {
                let key = (variant.name(), algo.name(), precision_name(f16));
                assert!(
                    want.insert(key, n).is_none(),
                    "{variant:?} {algo:?} listed twice"
                );
            }
        }
        assert_eq!(
            self.0, want,
            "runs per (variant, algorithm, precision): left ran, right expected"
        );
    }
}

/// Deterministic xorshift values in `[lo, hi)`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.next()).collect()
    }
}

fn tensor(name: &str, h: usize, w: usize, c: usize) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        h,
        w,
        c,
    }
}

const ALIGN: u64 = 256;

/// Placements like the planner's: distinct, non-zero, 256-aligned, not in id order, with gaps
/// between tensors. `elems[t]`: elements of tensor t. Returns (placements, arena bytes).
fn arena_layout(elems: &[usize], dtypes: &[Dtype]) -> (Vec<Placement>, u64) {
    let mut placements = vec![None; elems.len()];
    let mut at = 2 * ALIGN;
    for t in (0..elems.len()).rev() {
        let size_bytes = elems[t] as u64 * dtypes[t].bytes();
        placements[t] = Some(Placement {
            offset_bytes: at,
            size_bytes,
            dtype: dtypes[t],
            first_step: 0,
            last_step: 0,
            phases: Interval { first: 0, last: 0 },
        });
        at = (at + size_bytes).div_ceil(ALIGN) * ALIGN + ALIGN;
    }
    (
        placements.into_iter().map(Option::unwrap).collect(),
        at + ALIGN,
    )
}

fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => bytemuck::cast_slice(values).to_vec(),
        Dtype::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

fn decode(bytes: &[u8], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F32 => bytemuck::pod_collect_to_vec(bytes),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
            .collect(),
    }
}

/// `v` as stored in `dtype` and read back.
fn rounded(v: &[f32], dtype: Dtype) -> Vec<f32> {
    decode(&encode(v, dtype), dtype)
}

enum Check {
    /// `|Δ| <= tol * max(1, max |ref|)`, NaN-aware (`tests/common`).
    Tolerance(f64),
    Exact,
    /// NaN where the reference has NaN (propagated, not swallowed), the rest within this
    /// tolerance (as [`Check::Tolerance`]).
    NanWhereExpected(f64),
}

/// One kernel run: the arena's tensors (data, type) and the op's constants.
struct Run<'a> {
    label: &'a str,
    /// Elements of every tensor the kernel touches (graph tensors, then any scratch).
    elems: Vec<usize>,
    dtypes: Vec<Dtype>,
    inputs: Vec<(usize, &'a [f32])>,
    /// Outputs to check; `scratch` tensors are written but not checked.
    expected: Vec<(usize, &'a [f32])>,
    scratch: Vec<usize>,
    consts: &'a [f32],
    weights: Dtype,
    check: Check,
}

/// The launches `f` emits for `images` images, grids folded within this device's limit.
fn emit(images: usize, f: impl FnOnce(&mut Emitter)) -> Vec<Launch> {
    let max = gpu().ctx.limits.max_compute_workgroups_per_dimension;
    let mut e = Emitter::new(images, 0, max);
    f(&mut e);
    e.launches
}

/// Runs the launches `make` plans (given every tensor's placement and the op's weight slot)
/// on an arena holding the run's inputs, with the textures they read, and checks its
/// expected outputs (and that nothing else changed).
fn run_and_check(run: Run<'_>, make: impl FnOnce(&[Placement], Option<WeightSlot>) -> Vec<Launch>) {
    use wgpu::util::DeviceExt;
    let g = gpu();
    let dev = &g.ctx.device;
    let label = run.label;
    let (placements, size) = arena_layout(&run.elems, &run.dtypes);
    let mut before = vec![0xFFu8; size as usize];
    for &(t, data) in &run.inputs {
        assert_eq!(data.len(), run.elems[t], "{label}: input {t} length");
        let o = placements[t].offset_bytes as usize;
        let bytes = encode(data, run.dtypes[t]);
        before[o..o + bytes.len()].copy_from_slice(&bytes);
    }
    let arena = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test arena"),
        contents: &before,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
    });
    // The op's constants at a non-zero aligned offset, 0xFF around them.
    let calign = g.ctx.limits.min_storage_buffer_offset_alignment.max(256) as usize;
    let cbytes = encode(run.consts, run.weights);
    let clen = cbytes.len().next_multiple_of(4);
    let mut wdata = vec![0xFFu8; 2 * calign + clen.next_multiple_of(calign) + calign];
    wdata[2 * calign..2 * calign + cbytes.len()].copy_from_slice(&cbytes);
    let weights = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test weights"),
        contents: &wdata,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let slot = (!run.consts.is_empty()).then_some(WeightSlot {
        buffer: 0,
        offset_bytes: (2 * calign) as u64,
        size_bytes: clen as u64,
    });
    let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
    let launches = make(&placements, slot);
    // The texture variant's textures, as a session sizes them from its plan.
    let t = launch::textures(&launches, 1);
    let staging = |texels: u64, dtype: Dtype| {
        (texels > 0).then(|| texture::create(dev, texels, dtype, "test staging texture"))
    };
    let (t32, t16) = (
        staging(t.staging_f32, Dtype::F32),
        staging(t.staging_f16, Dtype::F16),
    );
    let mut enc = dev.create_command_encoder(&Default::default());
    let wt = t.weights[0]
        .then(|| texture::copy_of_buffer(dev, &mut enc, &weights, run.weights, "test weights"));
    g.ctx.queue.submit([enc.finish()]);
    let res = Resources {
        arena: &arena,
        weights: std::slice::from_ref(&weights),
        staging: [t32.as_ref(), t16.as_ref()],
        weight_textures: std::slice::from_ref(&wt),
    };
    let dispatches = g.kernels.record(&launches, &res);

    let readback = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = dev.create_command_encoder(&Default::default());
    encode_sequence(&mut enc, label, &dispatches, None);
    enc.copy_buffer_to_buffer(&arena, 0, &readback, 0, size);
    g.ctx.queue.submit([enc.finish()]);
    if let Some(e) = pollster::block_on(scope.pop()) {
        panic!("{label}: {e}");
    }
    readback.map_async(wgpu::MapMode::Read, .., |r| r.expect("map"));
    dev.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let after: Vec<u8> = readback.get_mapped_range(..).unwrap().to_vec();

    let mut written = vec![false; before.len()];
    for t in run
        .scratch
        .iter()
        .copied()
        .chain(run.expected.iter().map(|e| e.0))
    {
        let p = &placements[t];
        written[p.offset_bytes as usize..p.end_bytes() as usize]
            .iter_mut()
            .for_each(|b| *b = true);
    }
    for &(t, want) in &run.expected {
        assert_eq!(want.len(), run.elems[t], "{label}: reference length");
        let p = &placements[t];
        let got = decode(
            &after[p.offset_bytes as usize..p.end_bytes() as usize],
            p.dtype,
        );
        let what = format!("{label}: tensor {t}");
        match run.check {
            Check::Tolerance(tol) => {
                let e = common::assert_close(&got, want, tol, &what);
                if std::env::var_os("RESNET_KERNEL_ERRORS").is_some() {
                    eprintln!("error {e:.2e} (tolerance {tol:.0e}) {what}");
                }
            }
            Check::Exact => {
                for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits(),
                        "{what} element {i}: gpu {g} vs cpu {w}"
                    );
                }
            }
            Check::NanWhereExpected(tol) => {
                for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
                    assert_eq!(
                        g.is_nan(),
                        w.is_nan(),
                        "{what} element {i}: gpu {g} vs cpu {w}"
                    );
                }
                let keep = |v: &[f32]| -> Vec<f32> {
                    v.iter()
                        .zip(want)
                        .filter(|(_, w)| !w.is_nan())
                        .map(|(&x, _)| x)
                        .collect()
                };
                common::assert_close(&keep(&got), &keep(want), tol, &what);
            }
        }
    }
    for (i, ((&a, &b), &out)) in after.iter().zip(&before).zip(&written).enumerate() {
        assert!(
            out || a == b,
            "{label}: arena byte {i} outside the outputs changed ({b:#x} -> {a:#x})"
        );
    }
}

#[derive(Clone, Copy, Debug)]
struct ConvCase {
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    batch: usize,
    in_act: bool,
    /// Residual stride (the residual tensor has `(o - 1) * rs + 1 + extra` rows).
    residual: Option<usize>,
    /// Split at this channel (split relu = !relu).
    split: Option<usize>,
    relu: bool,
}

const fn case(h: usize, w: usize, cin: usize, cout: usize, k: usize, stride: usize) -> ConvCase {
    ConvCase {
        h,
        w,
        cin,
        cout,
        k,
        stride,
        pad: k / 2,
        batch: 1,
        in_act: false,
        residual: None,
        split: None,
        relu: false,
    }
}

fn conv_cases() -> Vec<ConvCase> {
    vec![
        // 1x1 stride 1 (plain GEMM path), vec4 input, cout not a multiple of 4.
        ConvCase {
            batch: 3,
            relu: true,
            residual: Some(1),
            ..case(5, 7, 8, 10, 1, 1)
        },
        // 1x1, cin 5 (scalar path), cout 7, pre-activation with negative scales.
        ConvCase {
            in_act: true,
            ..case(5, 3, 5, 7, 1, 1)
        },
        // 1x1 stride 2 projection shortcut (v1): general path with a 1x1 kernel.
        ConvCase {
            relu: true,
            ..case(9, 7, 8, 12, 1, 2)
        },
        // 3x3 stride 1 with everything fused.
        ConvCase {
            batch: 3,
            in_act: true,
            residual: Some(1),
            relu: true,
            ..case(7, 5, 12, 16, 3, 1)
        },
        // 3x3 stride 2, odd size, cin 5, cout 7.
        case(9, 9, 5, 7, 3, 2),
        // 3x3 stride 2 on an even size with the pre-activation: padding must stay 0 even where
        // relu(0 * scale + shift) would not be.
        ConvCase {
            batch: 3,
            in_act: true,
            ..case(8, 6, 8, 8, 3, 2)
        },
        // 7x7 stride 2 stem on 3 channels.
        ConvCase {
            batch: 3,
            relu: true,
            ..case(13, 11, 3, 10, 7, 2)
        },
        // Residual subsampled with stride 2 (v2's last unit of a block).
        ConvCase {
            residual: Some(2),
            relu: true,
            ..case(5, 5, 8, 12, 1, 1)
        },
        ConvCase {
            batch: 3,
            residual: Some(2),
            in_act: true,
            ..case(5, 3, 5, 7, 3, 1)
        },
        // Split outputs: at a multiple of 4, and inside a vec4 (at 6 of 10).
        ConvCase {
            in_act: true,
            split: Some(12),
            relu: true,
            ..case(5, 7, 8, 20, 1, 1)
        },
        ConvCase {
            batch: 3,
            split: Some(6),
            ..case(3, 5, 5, 10, 1, 1)
        },
        // Several M, N and K tiles in both variants (M 363, N 70, K 180).
        ConvCase {
            batch: 3,
            in_act: true,
            relu: true,
            ..case(11, 11, 20, 70, 3, 1)
        },
        // Classifier-like: 1x1 on 1x1 maps, M = batch.
        ConvCase {
            batch: 3,
            ..case(1, 1, 64, 10, 1, 1)
        },
        // Tiles divide M (64 / 128 pixels), N (64 channels) and K (16, 144): the plan drops the
        // bounds checks in both variants (asserted in `conv_configs_drop_checks_only_when_tiles_divide`).
        ConvCase {
            in_act: true,
            residual: Some(1),
            relu: true,
            ..case(8, 8, 16, 64, 1, 1)
        },
        ConvCase {
            batch: 2,
            in_act: true,
            residual: Some(2),
            relu: true,
            ..case(8, 8, 16, 64, 3, 1)
        },
        // ... with a split (conv1+shortcut), at a tile boundary and inside a tile.
        ConvCase {
            in_act: true,
            split: Some(32),
            relu: true,
            ..case(8, 8, 32, 64, 1, 1)
        },
        ConvCase {
            batch: 2,
            split: Some(20),
            ..case(8, 8, 16, 64, 1, 1)
        },
        // M divides the register tile (32) but not the shared one (64); N divides neither.
        ConvCase {
            batch: 1,
            ..case(4, 8, 16, 36, 1, 1)
        },
        // N divides, M does not (7x7 maps like stage 4).
        ConvCase {
            batch: 1,
            in_act: true,
            ..case(7, 7, 32, 64, 3, 1)
        },
    ]
}

fn build_conv(c: &ConvCase, rng: &mut Rng) -> (ConvOp, Vec<TensorInfo>) {
    let oh = (c.h + 2 * c.pad - c.k) / c.stride + 1;
    let ow = (c.w + 2 * c.pad - c.k) / c.stride + 1;
    let at = c.split.unwrap_or(c.cout);
    let mut tensors = vec![tensor("in", c.h, c.w, c.cin), tensor("out", oh, ow, at)];
    let residual = c.residual.map(|rs| {
        // An odd extra row/column so the subsampled residual is not simply "every other".
        tensors.push(tensor("res", (oh - 1) * rs + rs, (ow - 1) * rs + 1, at));
        Residual {
            tensor: tensors.len() - 1,
            stride: rs,
        }
    });
    let split = c.split.map(|at| {
        tensors.push(tensor("split", oh, ow, c.cout - at));
        SplitOutput {
            at,
            tensor: tensors.len() - 1,
            relu: !c.relu,
        }
    });
    let op = ConvOp {
        name: format!("{c:?}"),
        input: 0,
        output: 1,
        kh: c.k,
        kw: c.k,
        stride: c.stride,
        pad: c.pad,
        cin: c.cin,
        cout: c.cout,
        weight: rng.vec(c.k * c.k * c.cin * c.cout, -0.5, 0.5),
        bias: rng.vec(c.cout, -0.5, 0.5),
        // Scales of both signs; mostly positive shifts so that wrongly activating the zero
        // padding (relu(shift) != 0) shows.
        in_act: c.in_act.then(|| BnRelu {
            scale: rng.vec(c.cin, -1.0, 1.0),
            shift: rng.vec(c.cin, -0.3, 1.0),
        }),
        residual,
        relu: c.relu,
        split,
    };
    (op, tensors)
}

/// How a conv case runs: the GEMM's variant, the algorithm and the storage type.
#[derive(Clone, Copy, Debug)]
struct Mode {
    variant: ConvVariant,
    algo: ConvAlgo,
    f16: bool,
    /// The shared variant's tile (`None`: the heuristic's).
    tile: Option<SharedTile>,
}

/// The storage types of a conv's tensors in f16 mode: f16 where the channel count is a
/// multiple of 4 (the planner's rule), both outputs of a split alike.
fn conv_dtypes(op: &ConvOp, tensors: &[TensorInfo], f16: bool) -> Vec<Dtype> {
    let mut d: Vec<Dtype> = tensors
        .iter()
        .map(|t| {
            if f16 && t.c.is_multiple_of(4) {
                Dtype::F16
            } else {
                Dtype::F32
            }
        })
        .collect();
    if let Some(s) = &op.split
        && d[op.output] != d[s.tensor]
    {
        d[op.output] = Dtype::F32;
        d[s.tensor] = Dtype::F32;
    }
    d
}

/// The subgroup variant's condition on a shape (the planner's `words_ok`): channel counts and
/// the split point multiples of 4. Elsewhere a forced subgroup variant runs as the register
/// one.
fn subgroup_applies(op: &ConvOp) -> bool {
    op.cin.is_multiple_of(4)
        && op.cout.is_multiple_of(4)
        && op.split.as_ref().is_none_or(|s| s.at.is_multiple_of(4))
}

/// Winograd's condition on a shape: 3x3 stride 1, channels multiples of 4, no split.
fn winograd_applies(op: &ConvOp) -> bool {
    op.kh == 3
        && op.stride == 1
        && op.cin.is_multiple_of(4)
        && op.cout.is_multiple_of(4)
        && op.split.is_none()
}

/// Input elements a NaN test poisons.
fn nan_positions(len: usize) -> [usize; 3] {
    [3, len / 2, len - 1]
}

/// Where a Winograd conv's output is NaN given NaN inputs, per output pixel (NaN reaches every
/// output channel through the GEMM over input channels): the IEEE arithmetic of transforms
/// with the zero coefficients of `B^T` and `A^T` folded away (as `shaders/conv/winograd.wgsl`
/// writes them). Output `r` of a tile side sums the products `i` with `A^T[r][i] != 0`, product
/// `i` the tile inputs `j` with `B^T[i][j] != 0`; a NaN at `j` reaches `r` through any such `i`
/// (sums do not cancel NaN). F(2,3) reaches exactly the direct conv's 3x3 windows, F(4,3)
/// more of its tile (output 0 takes inputs 0 to 4 of its tile).
fn winograd_nan_pixels(
    tile: Tile,
    tensors: &[TensorInfo],
    op: &ConvOp,
    batch: usize,
    input: &[f32],
) -> Vec<bool> {
    let (a, m) = (tile.alpha(), tile.m());
    let (bt, at) = (tile.bt(), tile.at());
    let reaches = |r: usize, j: usize| (0..a).any(|i| at[r * a + i] != 0.0 && bt[i * a + j] != 0.0);
    let (ti, to) = (&tensors[op.input], &tensors[op.output]);
    let mut nan = vec![false; batch * to.h * to.w];
    for (e, _) in input.iter().enumerate().filter(|(_, v)| v.is_nan()) {
        let pix = e / ti.c;
        let (n, iy, ix) = (pix / (ti.h * ti.w), pix / ti.w % ti.h, pix % ti.w);
        for oy in 0..to.h {
            for ox in 0..to.w {
                // The tile's inputs start one row and column before its outputs (pad 1).
                let (jy, jx) = (
                    (iy + 1) as isize - (oy / m * m) as isize,
                    (ix + 1) as isize - (ox / m * m) as isize,
                );
                if (0..a as isize).contains(&jy)
                    && (0..a as isize).contains(&jx)
                    && reaches(oy % m, jy as usize)
                    && reaches(ox % m, jx as usize)
                {
                    nan[(n * to.h + oy) * to.w + ox] = true;
                }
            }
        }
    }
    nan
}

/// Runs `op` in `mode` against the CPU reference; false if the mode does not apply to the
/// shape (Winograd on a conv it cannot take, the subgroup variant where the plan documents
/// the register one instead). Any other fallback fails, as does a forced subgroup variant on
/// an adapter that lacks what it needs. With `nan`, NaNs at [`nan_positions`] of the input
/// must come out as NaN exactly where the arithmetic puts them.
fn check_conv(
    c: &ConvCase,
    op: &ConvOp,
    tensors: &[TensorInfo],
    mode: Mode,
    rng: &mut Rng,
    nan: bool,
) -> bool {
    if mode.variant == ConvVariant::Subgroup {
        require_subgroups();
    }
    let winograd = mode.algo.tile();
    if winograd.is_some() && !winograd_applies(op) {
        return false;
    }
    let profile = DeviceProfile {
        forced: Some(mode.variant),
        winograd: WinogradPolicy::Auto,
        ..DeviceProfile::software()
    };
    let plan = plan_conv_tiled(op, tensors, c.batch, &profile, mode.algo, mode.tile).unwrap();
    if mode.variant == ConvVariant::Subgroup && !subgroup_applies(op) {
        assert_eq!(
            plan.gemm.variant,
            ConvVariant::Register,
            "a subgroup conv on {c:?} runs as the register variant"
        );
        return false;
    }
    assert_eq!(
        plan.gemm.variant, mode.variant,
        "{mode:?} on {c:?}: the plan fell back to another variant"
    );
    let mut dtypes = conv_dtypes(op, tensors, mode.f16);
    let weights = if mode.f16 { Dtype::F16 } else { Dtype::F32 };
    let mut elems: Vec<usize> = tensors.iter().map(|t| c.batch * t.len()).collect();
    let mut scratch = Vec::new();
    let precision = if mode.f16 {
        Precision::F16
    } else {
        Precision::F32
    };
    for sc in scratch_for(op, mode.algo, tensors, precision, 0) {
        elems.push(c.batch * sc.elems_per_image as usize);
        dtypes.push(sc.dtype);
        scratch.push(elems.len() - 1);
    }
    // The reference sees exactly the values the GPU stores: inputs and constants rounded.
    let mut input = rounded(&rng.vec(c.batch * tensors[0].len(), -1.0, 1.0), dtypes[0]);
    if nan {
        for i in nan_positions(input.len()) {
            input[i] = f32::NAN;
        }
    }
    let res = op.residual.as_ref().map(|r| {
        rounded(
            &rng.vec(c.batch * tensors[r.tensor].len(), -1.0, 1.0),
            dtypes[r.tensor],
        )
    });
    let mut ref_op = op.clone();
    if mode.f16 {
        ref_op.weight = rounded(&op.weight, Dtype::F16);
        ref_op.bias = rounded(&op.bias, Dtype::F16);
        if let Some(a) = &mut ref_op.in_act {
            a.scale = rounded(&a.scale, Dtype::F16);
            a.shift = rounded(&a.shift, Dtype::F16);
        }
    }
    let (mut out, split) =
        resnet_wgpu::cpu::conv(&ref_op, tensors, c.batch, &input, res.as_deref());
    if nan {
        for o in [Some(&out), split.as_ref()].into_iter().flatten() {
            assert!(o.iter().any(|v| v.is_nan()), "the reference propagates NaN");
            assert!(o.iter().any(|v| !v.is_nan()), "and only where it should");
        }
    }
    if let (true, Some(tile)) = (nan, winograd) {
        // Winograd's NaNs: at least the direct conv's, within the tiles the CPU Winograd
        // reference (whose transforms multiply by their zeros) makes all NaN.
        let px = winograd_nan_pixels(tile, tensors, op, c.batch, &input);
        let (whole, _) = resnet_wgpu::cpu::conv_winograd(
            &ref_op,
            tensors,
            c.batch,
            &input,
            res.as_deref(),
            tile,
        );
        let at = tensors[op.output].c;
        let model = px.iter().filter(|&&p| p).count() * at;
        let direct = out.iter().filter(|v| v.is_nan()).count();
        // F(2,3)'s folded transforms reach exactly the direct conv's windows; F(4,3)'s more.
        if tile == Tile::F2 {
            assert_eq!(
                model, direct,
                "{c:?}: F(2,3) spreads NaN like the direct conv"
            );
        } else {
            assert!(
                model > direct,
                "{c:?}: F(4,3) spreads NaN beyond the direct conv's"
            );
        }
        for (i, v) in out.iter_mut().enumerate() {
            let p = px[i / at];
            assert!(
                !v.is_nan() || p,
                "{c:?} {tile:?}: direct NaN at {i} outside the model"
            );
            assert!(
                !p || whole[i].is_nan(),
                "{c:?} {tile:?}: model NaN at {i} outside its tile"
            );
            if p {
                *v = f32::NAN;
            }
        }
    }
    let mut inputs = vec![(0, &input[..])];
    if let (Some(r), Some(data)) = (&op.residual, &res) {
        inputs.push((r.tensor, &data[..]));
    }
    let mut expected = vec![(1, &out[..])];
    if let (Some(s), Some(data)) = (&op.split, &split) {
        expected.push((s.tensor, &data[..]));
    }
    let consts = Op::Conv(op.clone()).constants_for(winograd);
    let tol = match (mode.f16, winograd) {
        (true, Some(Tile::F4)) => 2e-2,
        (true, _) => 4e-3,
        (false, Some(Tile::F4)) => 3e-4,
        _ => 1e-4,
    };
    let label = format!(
        "{}{} {} {} ({}) {c:?}",
        if nan { "NaN " } else { "" },
        mode.variant.name(),
        mode.algo.name(),
        if mode.f16 { "f16" } else { "f32" },
        plan.describe()
    );
    run_and_check(
        Run {
            label: &label,
            elems: elems.clone(),
            dtypes: dtypes.clone(),
            inputs,
            expected,
            scratch: scratch.clone(),
            consts: &consts,
            weights,
            check: if nan {
                Check::NanWhereExpected(tol)
            } else {
                Check::Tolerance(tol)
            },
        },
        |placements, slot| {
            let scratch: Vec<Placement> = scratch.iter().map(|&t| placements[t]).collect();
            let at = ConvOperands {
                placements,
                scratch: &scratch,
                weights: slot.expect("a conv has weights"),
                transform_weights: None,
                weights_dtype: weights,
            };
            emit(c.batch, |e| {
                conv::launches(e, &plan, op, tensors, c.batch, &at)
            })
        },
    );
    true
}

#[test]
fn conv_matches_cpu_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut runs = Runs::default();
    for c in conv_cases() {
        let (op, tensors) = build_conv(&c, &mut rng);
        for variant in variants() {
            for f16 in [false, true] {
                let mode = Mode {
                    variant,
                    algo: ConvAlgo::Direct,
                    f16,
                    tile: None,
                };
                if check_conv(&c, &op, &tensors, mode, &mut rng, false) {
                    runs.add(mode);
                }
            }
        }
    }
    // All 19 cases in register, shared and texture, f32 and f16; the 11 whose channel counts
    // (and split) are multiples of 4 in the subgroup variant too (on software adapters).
    let subgroup = if gpu().ctx.is_software() { 11 } else { 0 };
    let mut expected = Vec::new();
    for f16 in [false, true] {
        for (variant, n) in [
            (ConvVariant::Shared, 19),
            (ConvVariant::Register, 19),
            (ConvVariant::Texture, 19),
            (ConvVariant::Subgroup, subgroup),
        ] {
            expected.push((variant, ConvAlgo::Direct, f16, n));
        }
    }
    runs.assert_exactly(&expected);
}

/// Every tile of the shared variant (8x8 to 4x4 outputs per invocation, 128x128 to 32x64 per
/// workgroup), on shapes that divide them (no bounds checks) and shapes that do not: partial
/// tiles in M, N and K, the 3-channel scalar path, pre-activation, residual, split outputs.
#[test]
fn shared_tiles_match_cpu_reference() {
    let mut rng = Rng(0x7a11_5eed_0000_0001);
    let cases = [
        // Divides every tile: M = 2 * 16 * 16 = 512, N = 128, K = 1 * 1 * 64.
        ConvCase {
            batch: 2,
            ..case(16, 16, 64, 128, 1, 1)
        },
        ConvCase {
            batch: 1,
            in_act: true,
            residual: Some(1),
            relu: true,
            ..case(9, 7, 20, 36, 3, 1)
        },
        ConvCase {
            batch: 3,
            ..case(11, 11, 3, 24, 7, 2)
        },
        ConvCase {
            batch: 1,
            split: Some(12),
            ..case(10, 10, 16, 44, 1, 2)
        },
    ];
    let mut ran = 0;
    for c in cases {
        let (op, tensors) = build_conv(&c, &mut rng);
        for tile in SHARED_TILES {
            for f16 in [false, true] {
                let mode = Mode {
                    variant: ConvVariant::Shared,
                    algo: ConvAlgo::Direct,
                    f16,
                    tile: Some(tile),
                };
                ran += usize::from(check_conv(&c, &op, &tensors, mode, &mut rng, false));
            }
        }
    }
    assert_eq!(ran, cases.len() * SHARED_TILES.len() * 2);
}

/// Split K: 2 to 5 slices (the last one short), every epilogue (bias, pre-activation,
/// residual, ReLU, split outputs), f32 and f16 outputs, batch 1 and 2, the smallest and the
/// largest shared tile; the partial sums are planned scratch in a NaN-poisoned arena.
#[test]
fn split_k_matches_cpu_reference() {
    let mut rng = Rng(0x5b11_7000_cafe_0002);
    let cases = [
        ConvCase {
            batch: 1,
            in_act: true,
            residual: Some(1),
            relu: true,
            ..case(7, 7, 64, 32, 3, 1)
        },
        ConvCase {
            batch: 2,
            split: Some(20),
            ..case(5, 5, 48, 52, 3, 2)
        },
        ConvCase {
            batch: 1,
            ..case(3, 3, 128, 8, 1, 1)
        },
    ];
    let mut ran = 0;
    for c in cases {
        let (op, tensors) = build_conv(&c, &mut rng);
        for splits in [2, 3, 5] {
            for tile in [SHARED_TILES[0], SHARED_TILES[SHARED_TILES.len() - 1]] {
                for f16 in [false, true] {
                    let mode = Mode {
                        variant: ConvVariant::Shared,
                        algo: ConvAlgo::SplitK(splits),
                        f16,
                        tile: Some(tile),
                    };
                    ran += usize::from(check_conv(&c, &op, &tensors, mode, &mut rng, false));
                }
            }
        }
    }
    assert_eq!(ran, cases.len() * 3 * 2 * 2);
}

/// Winograd F(2,3) and F(4,3) with every GEMM variant, f32 and f16: odd sizes (partial tiles),
/// padding, the pre-activation, a residual at stride 1 and 2, ReLU, batch 1 and 3.
#[test]
fn winograd_matches_cpu_reference() {
    let mut rng = Rng(0x5151_2023_dead_beef);
    let cases = [
        ConvCase {
            batch: 3,
            in_act: true,
            residual: Some(1),
            relu: true,
            ..case(7, 5, 12, 16, 3, 1)
        },
        ConvCase {
            batch: 1,
            in_act: true,
            ..case(9, 11, 8, 12, 3, 1)
        },
        ConvCase {
            batch: 2,
            residual: Some(2),
            relu: true,
            ..case(8, 8, 16, 32, 3, 1)
        },
        ConvCase {
            batch: 1,
            relu: true,
            ..case(4, 6, 4, 8, 3, 1)
        },
        ConvCase {
            batch: 1,
            in_act: true,
            residual: Some(1),
            ..case(14, 14, 32, 64, 3, 1)
        },
    ];
    let mut runs = Runs::default();
    for c in cases {
        let (op, tensors) = build_conv(&c, &mut rng);
        for tile in [Tile::F2, Tile::F4] {
            for variant in variants() {
                for f16 in [false, true] {
                    let mode = Mode {
                        variant,
                        algo: ConvAlgo::Winograd(tile),
                        f16,
                        tile: None,
                    };
                    if check_conv(&c, &op, &tensors, mode, &mut rng, false) {
                        runs.add(mode);
                    }
                }
            }
        }
    }
    // Every case with either tile, in every variant of this adapter, f32 and f16.
    let mut expected = Vec::new();
    for tile in [Tile::F2, Tile::F4] {
        for variant in variants() {
            for f16 in [false, true] {
                expected.push((variant, ConvAlgo::Winograd(tile), f16, 5));
            }
        }
    }
    runs.assert_exactly(&expected);
}

/// A NaN in the input must come out as NaN where the frameworks' arithmetic puts it (their
/// ReLU and max pool propagate NaN); `max(x, 0.0)` on the GPU may return 0 for NaN and would
/// hide a broken input behind a finite answer. Convs: every variant direct, Winograd F(2,3)
/// and F(4,3) (NaN where its transforms' arithmetic spreads it: `winograd_nan_pixels`) and
/// split K, each in f32 and with f16 storage; then the pools and bn_relu.
#[test]
fn nan_propagates_through_every_kernel() {
    let mut rng = Rng(0x5eed_0000_0bad_f00d);
    // The shapes of `conv_cases` (the same pipelines): a fused 3x3 (Winograd and split K
    // take it too), a 1x1 stride-2 projection, a split output.
    let fused = ConvCase {
        batch: 3,
        in_act: true,
        residual: Some(1),
        relu: true,
        ..case(7, 5, 12, 16, 3, 1)
    };
    let cases = [
        fused,
        ConvCase {
            relu: true,
            ..case(9, 7, 8, 12, 1, 2)
        },
        ConvCase {
            in_act: true,
            split: Some(12),
            relu: true,
            ..case(5, 7, 8, 20, 1, 1)
        },
    ];
    let mut runs = Runs::default();
    let mut check = |c: &ConvCase, mode: Mode, rng: &mut Rng| {
        let (op, tensors) = build_conv(c, rng);
        if check_conv(c, &op, &tensors, mode, rng, true) {
            runs.add(mode);
        }
    };
    for f16 in [false, true] {
        for variant in variants() {
            for c in &cases {
                let mode = Mode {
                    variant,
                    algo: ConvAlgo::Direct,
                    f16,
                    tile: None,
                };
                check(c, mode, &mut rng);
            }
            for tile in [Tile::F2, Tile::F4] {
                let mode = Mode {
                    variant,
                    algo: ConvAlgo::Winograd(tile),
                    f16,
                    tile: None,
                };
                check(&fused, mode, &mut rng);
            }
        }
        // K = 9 * 12 = 108 in 3 slices of 48, 48 and 12 (K steps of 16).
        let mode = Mode {
            variant: ConvVariant::Shared,
            algo: ConvAlgo::SplitK(3),
            f16,
            tile: Some(SHARED_TILES[SHARED_TILES.len() - 1]),
        };
        check(&fused, mode, &mut rng);
    }
    let mut expected = Vec::new();
    for f16 in [false, true] {
        for variant in variants() {
            expected.push((variant, ConvAlgo::Direct, f16, cases.len()));
            expected.push((variant, ConvAlgo::Winograd(Tile::F2), f16, 1));
            expected.push((variant, ConvAlgo::Winograd(Tile::F4), f16, 1));
        }
        expected.push((ConvVariant::Shared, ConvAlgo::SplitK(3), f16, 1));
    }
    runs.assert_exactly(&expected);

    // Max pool (both pad values), global average pool with its fused post-norm, bn_relu.
    let tensors = vec![tensor("in", 7, 7, 5), tensor("out", 4, 4, 5)];
    let mut input = rng.vec(2 * tensors[0].len(), -1.0, 0.2);
    input[17] = f32::NAN;
    input[200] = f32::NAN;
    for pad_value in [PadValue::NegInf, PadValue::Zero] {
        let op = MaxPoolOp {
            name: format!("NaN max pool {pad_value:?}"),
            input: 0,
            output: 1,
            size: 3,
            stride: 2,
            pad_top: 1,
            pad_left: 1,
            pad_value,
        };
        let want = resnet_wgpu::cpu::max_pool(&op, &tensors, 2, &input);
        let nans = want.iter().filter(|v| v.is_nan()).count();
        assert!(nans >= 2 && nans < want.len(), "{nans} NaN outputs");
        run_and_check(
            simple_run(
                &op.name,
                &tensors,
                2,
                Dtype::F32,
                &[(0, &input)],
                &[(1, &want)],
                &[],
                Check::NanWhereExpected(1e-4),
            ),
            |placements, _| emit(2, |e| pool::max_pool(e, &op, &tensors, 2, placements)),
        );
    }
    let tensors = vec![tensor("in", 7, 7, 5), tensor("out", 1, 1, 5)];
    let op = GlobalAvgPoolOp {
        name: "NaN global average pool".into(),
        input: 0,
        output: 1,
        in_act: Some(BnRelu {
            scale: rng.vec(5, -1.0, 1.0),
            shift: rng.vec(5, -0.5, 0.5),
        }),
    };
    let want = resnet_wgpu::cpu::global_avg_pool(&op, &tensors, 2, &input);
    assert_eq!(want.iter().filter(|v| v.is_nan()).count(), 2);
    let consts = Op::GlobalAvgPool(op.clone()).constants();
    run_and_check(
        simple_run(
            &op.name,
            &tensors,
            2,
            Dtype::F32,
            &[(0, &input)],
            &[(1, &want)],
            &consts,
            Check::NanWhereExpected(1e-4),
        ),
        |placements, consts| {
            emit(2, |e| {
                pool::global_avg_pool(e, &op, &tensors, 2, placements, consts, Dtype::F32)
            })
        },
    );
    let tensors = vec![tensor("in", 7, 7, 5), tensor("out", 7, 7, 5)];
    let op = BnReluOp {
        name: "NaN bn_relu".into(),
        input: 0,
        output: 1,
        act: BnRelu {
            scale: rng.vec(5, -1.0, 1.0),
            shift: rng.vec(5, -0.5, 0.5),
        },
        relu: true,
    };
    let want = resnet_wgpu::cpu::bn_relu(&op, &tensors, 2, &input);
    assert_eq!(want.iter().filter(|v| v.is_nan()).count(), 2);
    let consts = Op::BnRelu(op.clone()).constants();
    run_and_check(
        simple_run(
            &op.name,
            &tensors,
            2,
            Dtype::F32,
            &[(0, &input)],
            &[(1, &want)],
            &consts,
            Check::NanWhereExpected(1e-4),
        ),
        |placements, consts| {
            emit(2, |e| {
                elementwise::bn_relu(e, &op, &tensors, 2, placements, consts.unwrap(), Dtype::F32)
            })
        },
    );
}

/// A run of a single-input, single-output op with every tensor of `dtype`.
#[allow(clippy::too_many_arguments)]
fn simple_run<'a>(
    label: &'a str,
    tensors: &[TensorInfo],
    batch: usize,
    dtype: Dtype,
    inputs: &[(usize, &'a [f32])],
    expected: &[(usize, &'a [f32])],
    consts: &'a [f32],
    check: Check,
) -> Run<'a> {
    Run {
        label,
        elems: tensors.iter().map(|t| batch * t.len()).collect(),
        dtypes: vec![dtype; tensors.len()],
        inputs: inputs.to_vec(),
        expected: expected.to_vec(),
        scratch: Vec::new(),
        consts,
        weights: dtype,
        check,
    }
}

#[test]
fn max_pool_matches_cpu_reference() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // (h, w, c, size, stride, pad_top, pad_left, pad value, out h, out w, batch)
    let cases = [
        // Symmetric padding 1 (torchvision / Keras v1), odd size, c % 4 != 0.
        (9, 9, 5, 3, 2, 1, 1, PadValue::NegInf, 5, 5, 3),
        // TF SAME on an even size: pad 0 top/left, the window hangs off bottom/right (-inf).
        (8, 8, 12, 3, 2, 0, 0, PadValue::NegInf, 4, 4, 1),
        // TF SAME on an odd size: total pad 2 -> 1 top/left and 1 bottom/right.
        (9, 7, 8, 3, 2, 1, 1, PadValue::NegInf, 5, 4, 1),
        // Explicit zero padding (inputs are mostly negative, so the zeros win at the edges).
        (7, 7, 5, 3, 2, 1, 1, PadValue::Zero, 4, 4, 3),
        // No padding, non-square.
        (7, 5, 3, 2, 2, 0, 0, PadValue::NegInf, 3, 2, 1),
    ];
    for (h, w, c, size, stride, pad_top, pad_left, pad_value, oh, ow, batch) in cases {
        let tensors = vec![tensor("in", h, w, c), tensor("out", oh, ow, c)];
        let op = MaxPoolOp {
            name: format!(
                "maxpool {h}x{w}x{c} {size}/{stride} pad {pad_top},{pad_left} {pad_value:?}"
            ),
            input: 0,
            output: 1,
            size,
            stride,
            pad_top,
            pad_left,
            pad_value,
        };
        // f16 storage where the channels allow it: a max of stored values is exact either way.
        for dtype in [Dtype::F32, Dtype::F16] {
            if dtype == Dtype::F16 && c % 4 != 0 {
                continue;
            }
            let input = rounded(&rng.vec(batch * tensors[0].len(), -1.0, 0.2), dtype);
            let want = resnet_wgpu::cpu::max_pool(&op, &tensors, batch, &input);
            run_and_check(
                simple_run(
                    &op.name,
                    &tensors,
                    batch,
                    dtype,
                    &[(0, &input)],
                    &[(1, &want)],
                    &[],
                    Check::Exact,
                ),
                |placements, _| {
                    emit(batch, |e| {
                        pool::max_pool(e, &op, &tensors, batch, placements)
                    })
                },
            );
        }
    }
}

#[test]
fn global_avg_pool_matches_cpu_reference() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    // (h, w, c, batch, in_act): c 300 spans two 256-channel workgroups.
    for (h, w, c, batch, act) in [
        (7, 7, 10, 3, false),
        (7, 7, 12, 3, true),
        (5, 3, 300, 2, true),
        (1, 1, 5, 1, false),
    ] {
        let tensors = vec![tensor("in", h, w, c), tensor("out", 1, 1, c)];
        let op = GlobalAvgPoolOp {
            name: format!("gap {h}x{w}x{c} act {act}"),
            input: 0,
            output: 1,
            in_act: act.then(|| BnRelu {
                scale: rng.vec(c, -1.0, 1.0),
                shift: rng.vec(c, -0.5, 0.5),
            }),
        };
        for dtype in [Dtype::F32, Dtype::F16] {
            if dtype == Dtype::F16 && c % 4 != 0 {
                continue;
            }
            let input = rounded(&rng.vec(batch * tensors[0].len(), -1.0, 1.0), dtype);
            let mut ref_op = op.clone();
            if let Some(a) = &mut ref_op.in_act {
                a.scale = rounded(&a.scale, dtype);
                a.shift = rounded(&a.shift, dtype);
            }
            let want = resnet_wgpu::cpu::global_avg_pool(&ref_op, &tensors, batch, &input);
            let consts = Op::GlobalAvgPool(op.clone()).constants();
            let tol = if dtype == Dtype::F16 { 4e-3 } else { 1e-4 };
            run_and_check(
                simple_run(
                    &op.name,
                    &tensors,
                    batch,
                    dtype,
                    &[(0, &input)],
                    &[(1, &want)],
                    &consts,
                    Check::Tolerance(tol),
                ),
                |placements, consts| {
                    emit(batch, |e| {
                        pool::global_avg_pool(e, &op, &tensors, batch, placements, consts, dtype)
                    })
                },
            );
        }
    }
}

#[test]
fn bn_relu_matches_cpu_reference() {
    let mut rng = Rng(0x0bad_cafe_f00d_d00d);
    // relu off: the affine only (MXNet Gluon v2's input normalisation).
    for (h, w, c, batch, relu) in [
        (5, 7, 6, 3, true),
        (3, 3, 13, 1, false),
        (4, 3, 8, 2, false),
        (2, 3, 4, 2, true),
    ] {
        let tensors = vec![tensor("in", h, w, c), tensor("out", h, w, c)];
        let op = BnReluOp {
            name: format!("bn_relu {h}x{w}x{c} relu {relu}"),
            input: 0,
            output: 1,
            act: BnRelu {
                scale: rng.vec(c, -1.0, 1.0),
                shift: rng.vec(c, -0.5, 0.5),
            },
            relu,
        };
        for dtype in [Dtype::F32, Dtype::F16] {
            if dtype == Dtype::F16 && c % 4 != 0 {
                continue;
            }
            let input = rounded(&rng.vec(batch * tensors[0].len(), -1.0, 1.0), dtype);
            let ref_op = BnReluOp {
                act: BnRelu {
                    scale: rounded(&op.act.scale, dtype),
                    shift: rounded(&op.act.shift, dtype),
                },
                ..op.clone()
            };
            let want = resnet_wgpu::cpu::bn_relu(&ref_op, &tensors, batch, &input);
            let consts = Op::BnRelu(op.clone()).constants();
            let tol = if dtype == Dtype::F16 { 4e-3 } else { 1e-4 };
            run_and_check(
                simple_run(
                    &op.name,
                    &tensors,
                    batch,
                    dtype,
                    &[(0, &input)],
                    &[(1, &want)],
                    &consts,
                    Check::Tolerance(tol),
                ),
                |placements, consts| {
                    emit(batch, |e| {
                        elementwise::bn_relu(
                            e,
                            &op,
                            &tensors,
                            batch,
                            placements,
                            consts.unwrap(),
                            dtype,
                        )
                    })
                },
            );
        }
    }
}

/// Grids beyond `max_compute_workgroups_per_dimension` are folded into y (the shaders
/// linearise `wid.y * num_workgroups.x + wid.x` and drop the overshoot), over more than that
/// many workgroups of one channel per pixel (one element per invocation, to stay within a
/// 128 MiB binding), every element compared with the CPU:
/// * bn_relu in place without the ReLU, x -> 3 - 2x: inputs in [-1, 1) become (1, 5], and a
///   second application gives [-7, 1), so an element of a skipped workgroup (still its
///   input) or of one run twice is out of tolerance;
/// * a 3x3 stride-1 max pool out of place: an output of a skipped workgroup keeps the arena's
///   NaN poison, one computed at the wrong place holds another pixel's maximum.
#[test]
fn large_grids_fold_into_two_dimensions() {
    let g = gpu();
    let max = g.ctx.limits.max_compute_workgroups_per_dimension as usize;
    let folded = |d: &Launch| {
        assert!(
            d.workgroups[1] > 1,
            "expected a folded grid: {:?}",
            d.workgroups
        );
    };
    let mut rng = Rng(7);

    // bn_relu: 256 invocations per workgroup.
    let pixels = (max + 100) * 256;
    let tensors = vec![tensor("x", pixels.div_ceil(1000), 1000, 1)];
    let op = BnReluOp {
        name: "bn_relu large, in place".into(),
        input: 0,
        output: 0,
        act: BnRelu {
            scale: vec![-2.0],
            shift: vec![3.0],
        },
        relu: false,
    };
    let input = rng.vec(tensors[0].len(), -1.0, 1.0);
    let want = resnet_wgpu::cpu::bn_relu(&op, &tensors, 1, &input);
    let consts = Op::BnRelu(op.clone()).constants();
    run_and_check(
        simple_run(
            &op.name,
            &tensors,
            1,
            Dtype::F32,
            &[(0, &input)],
            &[(0, &want)],
            &consts,
            Check::Tolerance(1e-6),
        ),
        |placements, consts| {
            let d = emit(1, |e| {
                elementwise::bn_relu(e, &op, &tensors, 1, placements, consts.unwrap(), Dtype::F32)
            });
            folded(&d[0]);
            d
        },
    );

    // Max pool: 64 invocations per workgroup.
    let pixels = (max + 100) * 64;
    let (h, w) = (pixels.div_ceil(1000), 1000);
    let tensors = vec![tensor("in", h, w, 1), tensor("out", h, w, 1)];
    let op = MaxPoolOp {
        name: "max pool large".into(),
        input: 0,
        output: 1,
        size: 3,
        stride: 1,
        pad_top: 1,
        pad_left: 1,
        pad_value: PadValue::NegInf,
    };
    let input = rng.vec(tensors[0].len(), -1.0, 1.0);
    let want = resnet_wgpu::cpu::max_pool(&op, &tensors, 1, &input);
    run_and_check(
        simple_run(
            &op.name,
            &tensors,
            1,
            Dtype::F32,
            &[(0, &input)],
            &[(1, &want)],
            &[],
            Check::Exact,
        ),
        |placements, _| {
            let d = emit(1, |e| pool::max_pool(e, &op, &tensors, 1, placements));
            folded(&d[0]);
            d
        },
    );
}

/// The padded constants layout the shaders rely on (CPU only).
#[test]
fn constants_layout_is_padded_to_vec4() {
    let mut rng = Rng(11);
    for c in conv_cases() {
        let (op, _) = build_conv(&c, &mut rng);
        let o = Op::Conv(op.clone());
        let v = o.constants();
        assert_eq!(v.len(), o.constants_len(), "{c:?}");
        let coutp = c.cout.div_ceil(4) * 4;
        let k = c.k * c.k * c.cin;
        for row in 0..k {
            assert_eq!(
                &v[row * coutp..row * coutp + c.cout],
                &op.weight[row * c.cout..][..c.cout]
            );
            assert!(
                v[row * coutp + c.cout..(row + 1) * coutp]
                    .iter()
                    .all(|&x| x == 0.0)
            );
        }
        assert_eq!(&v[k * coutp..k * coutp + c.cout], &op.bias[..]);
        if let Some(a) = &op.in_act {
            let s = (k + 1) * coutp;
            let cinp = c.cin.div_ceil(4) * 4;
            assert_eq!(&v[s..s + c.cin], &a.scale[..]);
            assert_eq!(&v[s + cinp..s + cinp + c.cin], &a.shift[..]);
            assert_eq!(v.len(), s + 2 * cinp);
        } else {
            assert_eq!(v.len(), (k + 1) * coutp);
        }
    }
    let op = Op::BnRelu(BnReluOp {
        name: "b".into(),
        input: 0,
        output: 1,
        act: BnRelu {
            scale: vec![1.0; 5],
            shift: vec![2.0; 5],
        },
        relu: true,
    });
    assert_eq!(
        op.constants(),
        [
            1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0
        ]
    );
    assert_eq!(op.constants_len(), 16);
}

#[test]
fn conv_variant_choice() {
    for v in ConvVariant::ALL {
        assert_eq!(v.name().parse::<ConvVariant>().unwrap(), v);
    }
    assert_eq!(
        "Shared".parse::<ConvVariant>().unwrap(),
        ConvVariant::Shared
    );
    assert!("fast".parse::<ConvVariant>().is_err());
    let g = gpu();
    let (op, tensors) = build_conv(&case(56, 56, 64, 64, 3, 1), &mut Rng(3));
    // The heuristic of this device, unforced (RESNET_CONV_VARIANT may be set for the run).
    let profile = DeviceProfile {
        forced: None,
        winograd: WinogradPolicy::Off,
        ..resnet_wgpu::gpu::kernels::adapter_profile(&g.ctx.device)
    };
    let variant = |op: &ConvOp, t: &[TensorInfo]| {
        plan_conv(op, t, 1, &profile, ConvAlgo::Direct)
            .unwrap()
            .gemm
            .variant
    };
    let chosen = variant(&op, &tensors);
    if g.ctx.is_software() {
        // Measured on lavapipe: texel fetches beat buffer loads on every ResNet shape (the
        // 3-channel stem included); the register variant takes the classifier at small
        // batches (too few GEMM rows for the texture tiles).
        assert_eq!(chosen, ConvVariant::Texture);
        let (stem, t) = build_conv(&case(16, 16, 3, 8, 7, 2), &mut Rng(3));
        assert_eq!(variant(&stem, &t), ConvVariant::Texture);
        let (fc, t) = build_conv(&case(1, 1, 64, 10, 1, 1), &mut Rng(3));
        assert_eq!(variant(&fc, &t), ConvVariant::Register);
    } else {
        assert_eq!(chosen, ConvVariant::Shared);
    }
}
