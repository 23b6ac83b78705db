//! Times the conv kernel variants on ResNet-50-like shapes and prints GFLOP/s.
//!
//! `cargo run --release --example conv_gflops [-- BATCH [SECONDS [FILTER]]]` (FILTER: only shapes
//! whose name contains it)
//!
//! Not a test: numbers depend on the machine. Each shape/config is run once to compile the
//! pipeline, then in timing steps of ~0.15 s (one submission of several dispatches each),
//! INTERLEAVED across the configs of a shape (so background load hits them alike), for about
//! SECONDS (default 1.5) per config; the best step is printed with the median, because on a
//! shared CPU (lavapipe) other processes only ever make a step slower.
//!
//! Configs: `plan` (what the plan picks on this device: algorithm and variant), then each
//! variant forced, direct and (3x3 stride-1 shapes) as Winograd F(2,3) / F(4,3); `-` where a
//! config does not apply. Texture-variant timings include the copy of the input into its
//! texture; Winograd timings both transforms. GFLOP/s count the direct convolution's FLOPs
//! ("effective", as cuDNN reports). With `CONV_GFLOPS_SPLIT=1` a Winograd config's three
//! dispatches are also timed alone (their GFLOP/s still count the whole conv's FLOPs). With
//! `CONV_GFLOPS_FIRST_RUNS=1` the first run of each config is printed: with an empty driver
//! cache (`MESA_SHADER_CACHE_DIR`), the compile cost of its pipelines.

use resnet_wgpu::gpu::kernels::{Kernels, Resources, texture};
use resnet_wgpu::gpu::{AdapterChoice, Dispatch, GpuContext, encode_sequence};
use resnet_wgpu::graph::{BnRelu, ConvOp, Op, TensorInfo};
use resnet_wgpu::plan::kernel::{
    ConvAlgo, DeviceProfile, WinogradPolicy, choose_algo, plan_conv, winograd_tile,
};
use resnet_wgpu::plan::launch::{self, Emitter, conv::ConvOperands};
use resnet_wgpu::plan::{ConvVariant, WeightSlot};
use resnet_wgpu::plan::{Dtype, Interval, Placement, Precision, scratch_for};
use resnet_wgpu::winograd::Tile;
use std::time::{Duration, Instant};
use wgpu::util::DeviceExt;

struct Shape {
    name: &'static str,
    h: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    in_act: bool,
}

#[rustfmt::skip]
const SHAPES: &[Shape] = &[
    Shape { name: "1x1 56x56 256->64", h: 56, cin: 256, cout: 64, k: 1, stride: 1, in_act: false },
    Shape { name: "1x1 56x56 64->256", h: 56, cin: 64, cout: 256, k: 1, stride: 1, in_act: false },
    Shape { name: "1x1 28x28 512->128 +in_act", h: 28, cin: 512, cout: 128, k: 1, stride: 1, in_act: true },
    Shape { name: "1x1 14x14 256->1024", h: 14, cin: 256, cout: 1024, k: 1, stride: 1, in_act: false },
    Shape { name: "3x3 56x56 64->64", h: 56, cin: 64, cout: 64, k: 3, stride: 1, in_act: false },
    Shape { name: "3x3 28x28 128->128", h: 28, cin: 128, cout: 128, k: 3, stride: 1, in_act: false },
    Shape { name: "3x3 28x28 128->128 +in_act", h: 28, cin: 128, cout: 128, k: 3, stride: 1, in_act: true },
    Shape { name: "3x3 14x14 256->256", h: 14, cin: 256, cout: 256, k: 3, stride: 1, in_act: false },
    Shape { name: "3x3 s2 56x56 128->128", h: 56, cin: 128, cout: 128, k: 3, stride: 2, in_act: false },
    Shape { name: "1x1 7x7 2048->512", h: 7, cin: 2048, cout: 512, k: 1, stride: 1, in_act: false },
    Shape { name: "3x3 7x7 512->512", h: 7, cin: 512, cout: 512, k: 3, stride: 1, in_act: false },
    Shape { name: "7x7 s2 224x224 3->64 (stem)", h: 224, cin: 3, cout: 64, k: 7, stride: 2, in_act: false },
    Shape { name: "1x1 1x1 2048->1000 (fc)", h: 1, cin: 2048, cout: 1000, k: 1, stride: 1, in_act: false },
];

fn main() {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().map_or(1, |a| a.parse().expect("BATCH"));
    let seconds: f64 = args.next().map_or(1.5, |a| a.parse().expect("SECONDS"));
    let filter = args.next().unwrap_or_default();
    let split = std::env::var_os("CONV_GFLOPS_SPLIT").is_some();
    let first_runs = std::env::var_os("CONV_GFLOPS_FIRST_RUNS").is_some();
    let ctx = GpuContext::new(&AdapterChoice::default()).expect("a wgpu adapter");
    println!("adapter: {}, batch {batch}", ctx.summary());
    let kernels = Kernels::new(&ctx.device);
    let base = resnet_wgpu::gpu::kernels::adapter_profile(&ctx.device);
    // (column, forced variant, algorithm: None = the plan's own choice)
    let mut configs: Vec<(String, Option<ConvVariant>, Option<ConvAlgo>)> =
        vec![("plan".into(), None, None)];
    for algo in [
        ConvAlgo::Direct,
        ConvAlgo::Winograd(Tile::F2),
        ConvAlgo::Winograd(Tile::F4),
    ] {
        for v in ConvVariant::ALL {
            configs.push((format!("{} {}", v.name(), algo.name()), Some(v), Some(algo)));
        }
    }
    println!(
        "GFLOP/s (effective), best (median) of ~0.15 s steps, configs interleaved; ms per conv \
         at the best rate"
    );
    for s in SHAPES.iter().filter(|s| s.name.contains(&filter)) {
        let pad = s.k / 2;
        let oh = (s.h + 2 * pad - s.k) / s.stride + 1;
        let tensors = vec![
            TensorInfo {
                name: "in".into(),
                h: s.h,
                w: s.h,
                c: s.cin,
            },
            TensorInfo {
                name: "out".into(),
                h: oh,
                w: oh,
                c: s.cout,
            },
        ];
        let op = ConvOp {
            name: s.name.into(),
            input: 0,
            output: 1,
            kh: s.k,
            kw: s.k,
            stride: s.stride,
            pad,
            cin: s.cin,
            cout: s.cout,
            weight: (0..s.k * s.k * s.cin * s.cout)
                .map(|i| ((i % 7) as f32 - 3.0) * 0.01)
                .collect(),
            bias: vec![0.1; s.cout],
            in_act: s.in_act.then(|| BnRelu {
                scale: vec![0.9; s.cin],
                shift: vec![0.1; s.cin],
            }),
            residual: None,
            relu: true,
            split: None,
        };
        let flops = 2.0 * batch as f64 * Op::Conv(op.clone()).macs_per_image(&tensors) as f64;
        println!("{}", s.name);
        let mut runs = Vec::new();
        for (name, variant, algo) in &configs {
            let profile = DeviceProfile {
                forced: *variant,
                ..base
            };
            let plan = match algo {
                Some(a) => plan_conv(&op, &tensors, batch, &profile, *a),
                None => plan_conv(
                    &op,
                    &tensors,
                    batch,
                    &profile,
                    choose_algo(&op, &tensors, batch, &profile, false),
                ),
            };
            let Ok(plan) = plan else { continue };
            let eligible = winograd_tile(
                &op,
                &tensors,
                batch,
                &DeviceProfile {
                    winograd: WinogradPolicy::Force(Tile::F2),
                    ..profile
                },
                false,
            )
            .is_some();
            if variant.is_some_and(|v| v != plan.gemm.variant)
                || (matches!(plan.algo, ConvAlgo::Winograd(_)) && !eligible)
            {
                continue; // the forced variant falls back, or the shape takes no Winograd
            }
            let tile = plan.algo.tile();
            // in | out | the algorithm's scratch (Winograd: V, M; split K: partial sums),
            // 256-byte aligned.
            let mut sizes = vec![batch * tensors[0].len(), batch * tensors[1].len()];
            for sc in scratch_for(&op, plan.algo, &tensors, Precision::F32, 0) {
                sizes.push(batch * sc.elems_per_image as usize);
            }
            let mut at = 0u64;
            let placements: Vec<Placement> = sizes
                .iter()
                .map(|&n| {
                    let p = Placement {
                        offset_bytes: at,
                        size_bytes: n as u64 * 4,
                        dtype: Dtype::F32,
                        first_step: 0,
                        last_step: 0,
                        phases: Interval { first: 0, last: 0 },
                    };
                    at = (at + n as u64 * 4).next_multiple_of(256);
                    p
                })
                .collect();
            let arena = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("arena"),
                size: at,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let weights = ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("weights"),
                    contents: bytemuck::cast_slice(&Op::Conv(op.clone()).constants_for(tile)),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                });
            let operands = ConvOperands {
                placements: &placements,
                scratch: &placements[2..],
                weights: WeightSlot {
                    buffer: 0,
                    offset_bytes: 0,
                    size_bytes: weights.size(),
                },
                transform_weights: None,
                weights_dtype: Dtype::F32,
            };
            let mut e = Emitter::new(batch, 0, ctx.limits.max_compute_workgroups_per_dimension);
            launch::conv::launches(&mut e, &plan, &op, &tensors, batch, &operands);
            // The texture variant's textures, sized as a plan sizes them.
            let t = launch::textures(&e.launches, 1);
            let staging = (t.staging_f32 > 0)
                .then(|| texture::create(&ctx.device, t.staging_f32, Dtype::F32, "input"));
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            let weights_texture = t.weights[0].then(|| {
                texture::copy_of_buffer(&ctx.device, &mut enc, &weights, Dtype::F32, "weights")
            });
            ctx.queue.submit([enc.finish()]);
            let res = Resources {
                arena: &arena,
                weights: std::slice::from_ref(&weights),
                staging: [staging.as_ref(), None],
                weight_textures: std::slice::from_ref(&weights_texture),
            };
            let d = kernels.record(&e.launches, &res);
            // A Winograd conv's three dispatches are also timed one by one (where its time goes).
            let parts: Vec<(String, Vec<Dispatch>)> = if d.len() > 1 && split {
                ["input transform", "GEMMs", "output transform"]
                    .iter()
                    .zip(&d)
                    .map(|(what, one)| (format!("  ... {what}"), vec![one.clone()]))
                    .collect()
            } else {
                Vec::new()
            };
            runs.push((
                format!("{name}: {}", plan.describe()),
                d,
                1usize,
                Vec::new(),
            ));
            for (what, one) in parts {
                runs.push((what, one, 1usize, Vec::new()));
            }
        }
        let run = |d: &[Dispatch], reps: usize| {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            let all: Vec<Dispatch> = (0..reps).flat_map(|_| d.iter().cloned()).collect();
            encode_sequence(&mut enc, "conv", &all, None);
            ctx.queue.submit([enc.finish()]);
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .unwrap();
        };
        for (name, d, reps, _) in &mut runs {
            // The first run includes the driver's compile of any pipeline not seen before
            // (lavapipe compiles at the first dispatch, not at pipeline creation).
            let (t, cpu) = (Instant::now(), cpu_seconds());
            run(d, 1);
            if first_runs {
                println!(
                    "  first run {:>8.3} s wall {:>7.2} s cpu  {name}",
                    t.elapsed().as_secs_f64(),
                    cpu_seconds() - cpu
                );
            }
            // Size a step so one submission takes ~0.15 s.
            let t = Instant::now();
            run(d, 1);
            let once = t.elapsed().max(Duration::from_micros(50));
            *reps = ((0.15 / once.as_secs_f64()) as usize).clamp(1, 1000);
        }
        let start = Instant::now();
        let mut rounds = 0;
        while rounds < 3 || start.elapsed().as_secs_f64() < seconds * runs.len() as f64 {
            for (_, d, reps, rates) in &mut runs {
                let t = Instant::now();
                run(d, *reps);
                rates.push(flops * *reps as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
            rounds += 1;
        }
        for (name, _, _, rates) in &mut runs {
            rates.sort_by(f64::total_cmp);
            let (best, median) = (rates[rates.len() - 1], rates[rates.len() / 2]);
            let ms = flops / best / 1e6;
            println!("  {best:>8.2} ({median:>6.2}) {ms:>8.3} ms  {name}");
        }
    }
}

/// CPU time of this process, all threads (lavapipe compiles and runs on its own threads), from
/// /proc/self/stat (utime + stime, in clock ticks of 10 ms); 0 where it cannot be read. CPU
/// time, unlike wall time, is barely disturbed by other processes on a busy machine.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}
