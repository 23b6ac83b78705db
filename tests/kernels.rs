//! Every GPU kernel against the CPU reference (`resnet_wgpu::cpu`) over a grid of shapes.
//!
//! Tolerance: `|gpu - ref| <= 1e-4 * max(1, max |ref|)` per output tensor (f32 accumulation in
//! a different order than the f64 reference); max pool must match exactly.
//!
//! Like the planner, every tensor sits at its own non-zero, 256-byte-aligned offset of one arena
//! and the op's constants at a non-zero offset of a weights buffer; all other bytes of both are
//! NaN, and everything outside the op's outputs must come back bit-identical, so out-of-bounds
//! reads (NaN in an output) and writes (a changed byte elsewhere) both fail.
//!
//! These tests need a wgpu adapter and FAIL without one (lavapipe is enough).

mod common;

use resnet_wgpu::gpu::kernels::{ConvTextures, ConvVariant, Kernels, texture};
use resnet_wgpu::gpu::{Dispatch, GpuContext, encode_sequence};
use resnet_wgpu::graph::{
    BnRelu, BnReluOp, ConvOp, GlobalAvgPoolOp, MaxPoolOp, Op, PadValue, Residual, SplitOutput,
    TensorInfo,
};
use std::sync::OnceLock;

struct Gpu {
    ctx: GpuContext,
    register: Kernels,
    shared: Kernels,
    texture: Kernels,
}

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let ctx = common::gpu();
        let mut register = Kernels::new(&ctx.device, &ctx.limits);
        register.set_conv_variant(Some(ConvVariant::Register));
        let mut shared = Kernels::new(&ctx.device, &ctx.limits);
        shared.set_conv_variant(Some(ConvVariant::Shared));
        let mut texture = Kernels::new(&ctx.device, &ctx.limits);
        texture.set_conv_variant(Some(ConvVariant::Texture));
        Gpu {
            ctx,
            register,
            shared,
            texture,
        }
    })
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

/// Byte offsets like the planner's: distinct, non-zero, 256-aligned, not in id order, with
/// NaN-filled gaps between tensors. Returns (offsets, arena size in bytes).
fn arena_layout(tensors: &[TensorInfo], batch: usize) -> (Vec<u64>, u64) {
    let mut offsets = vec![0; tensors.len()];
    let mut at = 2 * ALIGN;
    for t in (0..tensors.len()).rev() {
        offsets[t] = at;
        let bytes = (batch * tensors[t].len() * 4) as u64;
        at = (at + bytes).div_ceil(ALIGN) * ALIGN + ALIGN;
    }
    (offsets, at + ALIGN)
}

enum Check {
    /// `|Δ| <= 1e-4 * max(1, max |ref|)`, NaN-aware (`tests/common`).
    Tolerance,
    Exact,
    /// NaN where the reference has NaN (propagated, not swallowed), the rest as `Tolerance`.
    NanWhereExpected,
}

#[allow(clippy::too_many_arguments)]
/// Runs one kernel on an arena holding `inputs` and checks `expected` outputs (and that nothing
/// else changed).
fn run_and_check(
    label: &str,
    tensors: &[TensorInfo],
    batch: usize,
    inputs: &[(usize, &[f32])],
    expected: &[(usize, &[f32])],
    consts: &[f32],
    check: Check,
    make: impl FnOnce(&wgpu::Buffer, &[u64], Option<wgpu::BufferBinding<'_>>) -> Dispatch,
) {
    use wgpu::util::DeviceExt;
    let g = gpu();
    let dev = &g.ctx.device;
    let (offsets, size) = arena_layout(tensors, batch);
    let mut before = vec![f32::NAN; (size / 4) as usize];
    for &(t, data) in inputs {
        assert_eq!(data.len(), batch * tensors[t].len());
        let o = (offsets[t] / 4) as usize;
        before[o..o + data.len()].copy_from_slice(data);
    }
    let arena = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test arena"),
        contents: bytemuck::cast_slice(&before),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    // The op's constants at a non-zero aligned offset, NaN around them.
    let calign = g.ctx.limits.min_storage_buffer_offset_alignment.max(16) as usize / 4;
    let mut wdata = vec![f32::NAN; 2 * calign + consts.len().div_ceil(calign) * calign + calign];
    wdata[2 * calign..2 * calign + consts.len()].copy_from_slice(consts);
    let weights = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test weights"),
        contents: bytemuck::cast_slice(&wdata),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let binding = (!consts.is_empty()).then(|| wgpu::BufferBinding {
        buffer: &weights,
        offset: (2 * calign * 4) as u64,
        size: wgpu::BufferSize::new((consts.len() * 4) as u64),
    });
    let dispatch = make(&arena, &offsets, binding);

    let readback = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = dev.create_command_encoder(&Default::default());
    encode_sequence(&mut enc, label, std::slice::from_ref(&dispatch), None);
    enc.copy_buffer_to_buffer(&arena, 0, &readback, 0, size);
    g.ctx.queue.submit([enc.finish()]);
    readback.map_async(wgpu::MapMode::Read, .., |r| r.expect("map"));
    dev.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let after: Vec<f32> = bytemuck::cast_slice(&readback.get_mapped_range(..).unwrap()).to_vec();

    let mut is_output = vec![false; before.len()];
    for &(t, want) in expected {
        assert_eq!(
            want.len(),
            batch * tensors[t].len(),
            "{label}: reference length"
        );
        let o = (offsets[t] / 4) as usize;
        let got = &after[o..o + want.len()];
        is_output[o..o + want.len()]
            .iter_mut()
            .for_each(|b| *b = true);
        let what = format!("{label}: tensor {}", tensors[t].name);
        match check {
            Check::Tolerance => {
                common::assert_close(got, want, 1e-4, &what);
            }
            Check::Exact => {
                for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits(),
                        "{what} element {i} (pixel {}, channel {}): gpu {g} vs cpu {w}",
                        i / tensors[t].c,
                        i % tensors[t].c
                    );
                }
            }
            Check::NanWhereExpected => {
                // NaN exactly where the reference has NaN, the rest within tolerance.
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
                common::assert_close(&keep(got), &keep(want), 1e-4, &what);
            }
        }
    }
    for (i, ((&a, &b), &out)) in after.iter().zip(&before).zip(&is_output).enumerate() {
        assert!(
            out || a.to_bits() == b.to_bits(),
            "{label}: arena element {i} outside the outputs changed ({b} -> {a})"
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

#[test]
fn conv_matches_cpu_reference() {
    let g = gpu();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for c in conv_cases() {
        let (op, tensors) = build_conv(&c, &mut rng);
        let input = rng.vec(c.batch * tensors[0].len(), -1.0, 1.0);
        let res = op
            .residual
            .as_ref()
            .map(|r| rng.vec(c.batch * tensors[r.tensor].len(), -1.0, 1.0));
        let (out, split) = resnet_wgpu::cpu::conv(&op, &tensors, c.batch, &input, res.as_deref());
        let mut inputs = vec![(0, &input[..])];
        if let (Some(r), Some(data)) = (&op.residual, &res) {
            inputs.push((r.tensor, data));
        }
        let mut expected = vec![(1, &out[..])];
        if let (Some(s), Some(data)) = (&op.split, &split) {
            expected.push((s.tensor, data));
        }
        let consts = Op::Conv(op.clone()).constants();
        let variants = [
            ("register", &g.register),
            ("shared", &g.shared),
            ("texture", &g.texture),
        ];
        for (variant, kernels) in variants {
            let cfg = kernels
                .conv_config_for(&op, &tensors, c.batch as u32)
                .unwrap();
            run_and_check(
                &format!("{variant} ({}) {c:?}", cfg.describe()),
                &tensors,
                c.batch,
                &inputs,
                &expected,
                &consts,
                Check::Tolerance,
                |arena, offsets, consts| {
                    let consts = consts.unwrap();
                    let (input, weights) = conv_textures(c.batch * tensors[0].len(), consts.buffer);
                    kernels.conv_with(
                        &cfg,
                        &op,
                        &tensors,
                        c.batch as u32,
                        arena,
                        offsets,
                        consts.clone(),
                        Some(ConvTextures {
                            input: &input,
                            weights: &weights,
                            weights_texel: (consts.offset / 16) as u32,
                        }),
                    )
                },
            );
        }
    }
    // Structural overrides only: {vec4, scalar} x {1x1, general} x {checks, none} per variant
    // (the register Kernels also runs the 3 pool/elementwise pipelines in the other tests);
    // the texture variant has no scalar path but several pixels per invocation.
    assert!(g.shared.pipeline_count() <= 8 && g.register.pipeline_count() <= 8 + 3);
    assert!(g.texture.pipeline_count() <= 8);
}

/// A NaN in the input must come out as NaN where the frameworks' arithmetic puts it (their
/// ReLU and max pool propagate NaN); `max(x, 0.0)` on the GPU may return 0 for NaN and would
/// hide a broken input behind a finite answer.
#[test]
fn nan_propagates_through_every_kernel() {
    let g = gpu();
    let mut rng = Rng(0x5eed_0000_0bad_f00d);
    for c in [
        ConvCase {
            batch: 2,
            in_act: true,
            residual: Some(1),
            relu: true,
            ..case(7, 5, 12, 16, 3, 1)
        },
        ConvCase {
            relu: true,
            ..case(9, 7, 5, 12, 1, 2)
        },
        ConvCase {
            in_act: true,
            split: Some(12),
            relu: true,
            ..case(5, 7, 8, 20, 1, 1)
        },
    ] {
        let (op, tensors) = build_conv(&c, &mut rng);
        let mut input = rng.vec(c.batch * tensors[0].len(), -1.0, 1.0);
        for i in [3, input.len() / 2, input.len() - 1] {
            input[i] = f32::NAN;
        }
        let res = op
            .residual
            .as_ref()
            .map(|r| rng.vec(c.batch * tensors[r.tensor].len(), -1.0, 1.0));
        let (out, split) = resnet_wgpu::cpu::conv(&op, &tensors, c.batch, &input, res.as_deref());
        assert!(
            out.iter().any(|v| v.is_nan()),
            "the reference propagates NaN"
        );
        assert!(out.iter().any(|v| !v.is_nan()), "and only where it should");
        let mut inputs = vec![(0, &input[..])];
        if let (Some(r), Some(data)) = (&op.residual, &res) {
            inputs.push((r.tensor, data));
        }
        let mut expected = vec![(1, &out[..])];
        if let (Some(s), Some(data)) = (&op.split, &split) {
            expected.push((s.tensor, data));
        }
        let consts = Op::Conv(op.clone()).constants();
        for (variant, kernels) in [
            ("register", &g.register),
            ("shared", &g.shared),
            ("texture", &g.texture),
        ] {
            let cfg = kernels
                .conv_config_for(&op, &tensors, c.batch as u32)
                .unwrap();
            run_and_check(
                &format!("NaN {variant} {c:?}"),
                &tensors,
                c.batch,
                &inputs,
                &expected,
                &consts,
                Check::NanWhereExpected,
                |arena, offsets, consts| {
                    let consts = consts.unwrap();
                    let (input, weights) = conv_textures(c.batch * tensors[0].len(), consts.buffer);
                    kernels.conv_with(
                        &cfg,
                        &op,
                        &tensors,
                        c.batch as u32,
                        arena,
                        offsets,
                        consts.clone(),
                        Some(ConvTextures {
                            input: &input,
                            weights: &weights,
                            weights_texel: (consts.offset / 16) as u32,
                        }),
                    )
                },
            );
        }
    }

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
            &op.name,
            &tensors,
            2,
            &[(0, &input)],
            &[(1, &want)],
            &[],
            Check::NanWhereExpected,
            |arena, offsets, _| g.register.max_pool(&op, &tensors, 2, arena, offsets),
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
        &op.name,
        &tensors,
        2,
        &[(0, &input)],
        &[(1, &want)],
        &consts,
        Check::NanWhereExpected,
        |arena, offsets, consts| {
            g.register
                .global_avg_pool(&op, &tensors, 2, arena, offsets, consts)
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
    };
    let want = resnet_wgpu::cpu::bn_relu(&op, &tensors, 2, &input);
    assert_eq!(want.iter().filter(|v| v.is_nan()).count(), 2);
    let consts = Op::BnRelu(op.clone()).constants();
    run_and_check(
        &op.name,
        &tensors,
        2,
        &[(0, &input)],
        &[(1, &want)],
        &consts,
        Check::NanWhereExpected,
        |arena, offsets, consts| {
            g.register
                .bn_relu(&op, &tensors, 2, arena, offsets, consts.unwrap())
        },
    );
}

/// The texture variant's input texture (for `input_floats`) and a texture copy of `weights`.
fn conv_textures(input_floats: usize, weights: &wgpu::Buffer) -> (wgpu::Texture, wgpu::Texture) {
    let g = gpu();
    let dev = &g.ctx.device;
    // Generously sized: pixels * ceil(cin / 4) texels <= input_floats when cin >= 1.
    let input = texture::create(dev, input_floats as u64, "test input texture");
    let mut enc = dev.create_command_encoder(&Default::default());
    let weights_texture = texture::copy_of_buffer(dev, &mut enc, weights, "test weights texture");
    g.ctx.queue.submit([enc.finish()]);
    (input, weights_texture)
}

#[test]
fn conv_configs_drop_checks_only_when_tiles_divide() {
    use resnet_wgpu::plan::kernel::{DeviceProfile, choose_conv};
    let profile = |v| DeviceProfile {
        forced: Some(v),
        ..DeviceProfile::gpu()
    };
    let reg = profile(ConvVariant::Register);
    let sh = profile(ConvVariant::Shared);
    let cfg = |c: &ConvCase, p: &DeviceProfile| {
        let (op, t) = build_conv(c, &mut Rng(5));
        choose_conv(&op, &t, c.batch, p).unwrap()
    };
    // 8x8 1x1 16->64: M 64, N 64, K 16: every tile divides.
    let c = case(8, 8, 16, 64, 1, 1);
    assert!(!cfg(&c, &reg).checks && !cfg(&c, &sh).checks);
    assert!(cfg(&c, &reg).is_1x1 && cfg(&c, &reg).vec4);
    // K 144 = 9 * 16 and M 128.
    let c = ConvCase {
        batch: 2,
        ..case(8, 8, 16, 64, 3, 1)
    };
    assert!(!cfg(&c, &reg).checks && !cfg(&c, &sh).checks);
    // M 32: the register tile divides, the shared one does not.
    let c = case(4, 8, 16, 64, 1, 1);
    assert!(!cfg(&c, &reg).checks && cfg(&c, &sh).checks);
    // N 36 (not a multiple of 8), M 49, K 12 (not a multiple of 16).
    for c in [
        case(4, 8, 16, 36, 1, 1),
        case(7, 7, 16, 64, 1, 1),
        case(8, 8, 12, 64, 1, 1),
    ] {
        assert!(cfg(&c, &sh).checks, "{c:?}");
    }
    assert!(cfg(&case(7, 7, 16, 64, 1, 1), &reg).checks);
    // The grid covers the GEMM.
    let c = case(7, 7, 32, 64, 3, 1);
    let r = cfg(&c, &reg);
    assert_eq!((r.m, r.n, r.k), (49, 64, 288));
    assert_eq!(r.tiles, 64u32.div_ceil(8) * 49u32.div_ceil(32));
}

#[test]
fn max_pool_matches_cpu_reference() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // (h, w, c, size, stride, pad_top, pad_left, pad value, out h, out w, batch)
    let cases = [
        // Symmetric padding 1 (torchvision / Keras v1), odd size.
        (9, 9, 5, 3, 2, 1, 1, PadValue::NegInf, 5, 5, 3),
        // TF SAME on an even size: pad 0 top/left, the window hangs off bottom/right (-inf).
        (8, 8, 10, 3, 2, 0, 0, PadValue::NegInf, 4, 4, 1),
        // TF SAME on an odd size: total pad 2 -> 1 top/left and 1 bottom/right.
        (9, 7, 5, 3, 2, 1, 1, PadValue::NegInf, 5, 4, 1),
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
        let input = rng.vec(batch * tensors[0].len(), -1.0, 0.2);
        let want = resnet_wgpu::cpu::max_pool(&op, &tensors, batch, &input);
        run_and_check(
            &op.name,
            &tensors,
            batch,
            &[(0, &input)],
            &[(1, &want)],
            &[],
            Check::Exact,
            |arena, offsets, _| {
                gpu()
                    .register
                    .max_pool(&op, &tensors, batch as u32, arena, offsets)
            },
        );
    }
}

#[test]
fn global_avg_pool_matches_cpu_reference() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    // (h, w, c, batch, in_act): c 70 spans two 64-channel workgroups.
    for (h, w, c, batch, act) in [
        (7, 7, 10, 3, false),
        (7, 7, 10, 3, true),
        (5, 3, 70, 2, true),
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
        let input = rng.vec(batch * tensors[0].len(), -1.0, 1.0);
        let want = resnet_wgpu::cpu::global_avg_pool(&op, &tensors, batch, &input);
        let consts = Op::GlobalAvgPool(op.clone()).constants();
        run_and_check(
            &op.name,
            &tensors,
            batch,
            &[(0, &input)],
            &[(1, &want)],
            &consts,
            Check::Tolerance,
            |arena, offsets, consts| {
                gpu()
                    .register
                    .global_avg_pool(&op, &tensors, batch as u32, arena, offsets, consts)
            },
        );
    }
}

#[test]
fn bn_relu_matches_cpu_reference() {
    let mut rng = Rng(0x0bad_cafe_f00d_d00d);
    for (h, w, c, batch) in [(5, 7, 6, 3), (3, 3, 13, 1)] {
        let tensors = vec![tensor("in", h, w, c), tensor("out", h, w, c)];
        let op = BnReluOp {
            name: format!("bn_relu {h}x{w}x{c}"),
            input: 0,
            output: 1,
            act: BnRelu {
                scale: rng.vec(c, -1.0, 1.0),
                shift: rng.vec(c, -0.5, 0.5),
            },
        };
        let input = rng.vec(batch * tensors[0].len(), -1.0, 1.0);
        let want = resnet_wgpu::cpu::bn_relu(&op, &tensors, batch, &input);
        let consts = Op::BnRelu(op.clone()).constants();
        run_and_check(
            &op.name,
            &tensors,
            batch,
            &[(0, &input)],
            &[(1, &want)],
            &consts,
            Check::Tolerance,
            |arena, offsets, consts| {
                gpu()
                    .register
                    .bn_relu(&op, &tensors, batch as u32, arena, offsets, consts.unwrap())
            },
        );
    }
}

/// Grids beyond `max_compute_workgroups_per_dimension` are folded into y: a bn_relu over more
/// than 65535 workgroups of 256 elements, in place (input = output) so the arena stays within
/// the 128 MiB default binding size.
#[test]
fn large_grids_fold_into_two_dimensions() {
    let g = gpu();
    let c = 8;
    let hw = (g.ctx.limits.max_compute_workgroups_per_dimension as usize + 100) * 256 / c;
    let (h, w) = (hw.div_ceil(1000), 1000);
    let tensors = vec![tensor("x", h, w, c)];
    let op = BnReluOp {
        name: "bn_relu large".into(),
        input: 0,
        output: 0,
        act: BnRelu {
            scale: vec![2.0; c],
            shift: vec![-0.25; c],
        },
    };
    let mut rng = Rng(7);
    let input = rng.vec(tensors[0].len(), -1.0, 1.0);
    let want = resnet_wgpu::cpu::bn_relu(&op, &tensors, 1, &input);
    let consts = Op::BnRelu(op.clone()).constants();
    run_and_check(
        &op.name,
        &tensors,
        1,
        &[(0, &input)],
        &[(0, &want)],
        &consts,
        Check::Tolerance,
        |arena, offsets, consts| {
            let d = g
                .register
                .bn_relu(&op, &tensors, 1, arena, offsets, consts.unwrap());
            assert!(
                d.workgroups[1] > 1,
                "expected a folded grid: {:?}",
                d.workgroups
            );
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
    assert_eq!(
        "Shared".parse::<ConvVariant>().unwrap(),
        ConvVariant::Shared
    );
    assert_eq!(
        "register".parse::<ConvVariant>().unwrap(),
        ConvVariant::Register
    );
    assert_eq!(
        "texture".parse::<ConvVariant>().unwrap(),
        ConvVariant::Texture
    );
    assert!("fast".parse::<ConvVariant>().is_err());
    let g = gpu();
    let (op, tensors) = build_conv(&case(56, 56, 64, 64, 3, 1), &mut Rng(3));
    // The heuristic, unforced (RESNET_CONV_VARIANT may be set for the run: clear it here).
    let mut k = Kernels::new(&g.ctx.device, &g.ctx.limits);
    k.set_conv_variant(None);
    let variant = |op: &ConvOp, t: &[TensorInfo]| k.conv_config_for(op, t, 1).unwrap().variant;
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
