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
//! Configs: `plan` (what the plan picks on this device), `plan+chk` (the same with the bounds
//! checks forced on: the kernel before plan-time tuning), `register`, `shared` and `texture`
//! (variant forced). Texture-variant timings include the copy of the input into its texture.

use resnet_wgpu::gpu::kernels::{ConvConfig, ConvTextures, ConvVariant, Kernels, texture};
use resnet_wgpu::gpu::{AdapterChoice, GpuContext, encode_sequence};
use resnet_wgpu::graph::{BnRelu, ConvOp, Op, TensorInfo};
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
    let ctx = GpuContext::new(&AdapterChoice::default()).expect("a wgpu adapter");
    println!("adapter: {}, batch {batch}", ctx.summary());
    let kernels = Kernels::new(&ctx.device, &ctx.limits);
    type Tweak = fn(&Kernels, &ConvOp, &[TensorInfo], u32) -> resnet_wgpu::Result<ConvConfig>;
    let configs: [(&str, Tweak); 5] = [
        ("plan", |k, op, t, b| k.conv_config_for(op, t, b)),
        ("plan+chk", |k, op, t, b| {
            Ok(ConvConfig {
                checks: true,
                ..k.conv_config_for(op, t, b)?
            })
        }),
        ("register", |k, op, t, b| {
            let mut p = k.device_profile();
            p.forced = Some(ConvVariant::Register);
            resnet_wgpu::plan::kernel::choose_conv(op, t, b as usize, &p)
        }),
        ("shared", |k, op, t, b| {
            let mut p = k.device_profile();
            p.forced = Some(ConvVariant::Shared);
            resnet_wgpu::plan::kernel::choose_conv(op, t, b as usize, &p)
        }),
        ("texture", |k, op, t, b| {
            let mut p = k.device_profile();
            p.forced = Some(ConvVariant::Texture);
            resnet_wgpu::plan::kernel::choose_conv(op, t, b as usize, &p)
        }),
    ];
    println!("GFLOP/s, best (median) of ~0.15 s steps, configs interleaved");
    let mut head = format!("{:<32}", "shape");
    for (name, _) in &configs {
        head += &format!(" {name:>15}");
    }
    println!("{head}");
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
        let in_bytes = (batch * tensors[0].len() * 4) as u64;
        let out_off = in_bytes.div_ceil(256) * 256;
        let size = out_off + (batch * tensors[1].len() * 4) as u64;
        let arena = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("arena"),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let weights = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("weights"),
                contents: bytemuck::cast_slice(&Op::Conv(op.clone()).constants()),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            });
        let input_texture = texture::create(&ctx.device, in_bytes / 4, "input");
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let weights_texture = texture::copy_of_buffer(&ctx.device, &mut enc, &weights, "weights");
        ctx.queue.submit([enc.finish()]);
        let flops = 2.0 * batch as f64 * Op::Conv(op.clone()).macs_per_image(&tensors) as f64;
        let mut row = format!("{:<32}", s.name);
        let mut runs = Vec::new();
        for (_, tweak) in &configs {
            let cfg =
                tweak(&kernels, &op, &tensors, batch as u32).expect("a config for this shape");
            let d = kernels.conv_with(
                &cfg,
                &op,
                &tensors,
                batch as u32,
                &arena,
                &[0, out_off],
                weights.as_entire_buffer_binding(),
                Some(ConvTextures {
                    input: &input_texture,
                    weights: &weights_texture,
                    weights_texel: 0,
                }),
            );
            runs.push((d, 1usize, Vec::new()));
        }
        let run = |d: &resnet_wgpu::gpu::Dispatch, reps: usize| {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            encode_sequence(&mut enc, "conv", &vec![d.clone(); reps], None);
            ctx.queue.submit([enc.finish()]);
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .unwrap();
        };
        for (d, reps, _) in &mut runs {
            run(d, 1); // compile + warm up
            // Size a step so one submission takes ~0.15 s.
            let t = Instant::now();
            run(d, 1);
            let once = t.elapsed().max(Duration::from_micros(50));
            *reps = ((0.15 / once.as_secs_f64()) as usize).clamp(1, 1000);
        }
        let start = Instant::now();
        let mut rounds = 0;
        while rounds < 3 || start.elapsed().as_secs_f64() < seconds * runs.len() as f64 {
            for (d, reps, rates) in &mut runs {
                let t = Instant::now();
                run(d, *reps);
                rates.push(flops * *reps as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
            rounds += 1;
        }
        for (_, _, rates) in &mut runs {
            rates.sort_by(f64::total_cmp);
            let (best, median) = (rates[rates.len() - 1], rates[rates.len() / 2]);
            row += &format!(" {best:>7.2} ({median:>5.2})");
        }
        println!("{row}");
    }
}
