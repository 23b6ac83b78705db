//! The conv kernel on every distinct conv shape of ResNet-50 (torchvision, 224x224, batch 1;
//! fused input activation and split output kept, residual dropped),
//! timed on the GPU's clock (timestamp queries) where the adapter has them. Throughput is in
//! FLOP (2 x multiply-adds), which criterion prints as "elem/s".
//!
//! `cargo bench --bench conv`; on lavapipe the whole group takes about a minute.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use resnet_wgpu::gpu::session::Session;
use resnet_wgpu::gpu::timing::Timing;
use resnet_wgpu::gpu::{AdapterChoice, GpuContext};
use resnet_wgpu::graph::{Graph, LowerOptions, Op, lower};
use resnet_wgpu::model::Arch;
use resnet_wgpu::model::random::random_params;
use std::time::Duration;

/// One graph per distinct conv shape: the conv alone, its input as the graph input.
fn distinct_convs() -> Vec<(String, Graph)> {
    let arch = Arch::preset("resnet50").expect("preset");
    let params = random_params(&arch, 0);
    let g = lower(&arch, &params, 224, 224, &LowerOptions::default()).expect("lower");
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for op in &g.ops {
        let Op::Conv(c) = op else { continue };
        let (i, o) = (&g.tensors[c.input], &g.tensors[c.output]);
        let key = (
            c.kh,
            c.stride,
            c.cin,
            c.cout,
            i.h,
            c.split.is_some(),
            c.residual.is_some(),
        );
        if seen.contains(&key) || c.name == "classifier" {
            continue;
        }
        seen.push(key);
        let mut conv = c.clone();
        let mut tensors = vec![i.clone(), o.clone()];
        conv.input = 0;
        conv.output = 1;
        if let Some(s) = conv.split.as_mut() {
            tensors.push(g.tensors[s.tensor].clone());
            s.tensor = 2;
        }
        // A one-op graph has nothing that produces the residual: bench the GEMM without it (the
        // residual only adds one read per output in the epilogue).
        conv.residual = None;
        let name = format!(
            "{}x{}s{} {}x{}x{}->{}x{}x{}",
            c.kh, c.kw, c.stride, i.h, i.w, i.c, o.h, o.w, c.cout
        );
        out.push((
            name,
            Graph {
                tensors,
                ops: vec![Op::Conv(conv)],
                input: 0,
                logits: 1,
                features: Vec::new(),
            },
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let ctx = GpuContext::new(&AdapterChoice::default()).expect("a wgpu adapter");
    let mut group = c.benchmark_group(format!("conv resnet50 b1 ({})", ctx.info.name));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (name, graph) in distinct_convs() {
        let flops = 2 * graph.macs_per_image();
        let session = Session::new(&ctx, graph, 1).expect("session");
        let [ch, h, w] = session.input_shape();
        let input = vec![0.5f32; ch * h * w];
        group.throughput(Throughput::Elements(flops));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = std::time::Instant::now();
                    let (_, t) = session
                        .run_nchw_timed(&input, 1, Timing::Whole)
                        .expect("run");
                    // GPU time where the adapter has timestamps, wall time otherwise.
                    total += t.map_or(t0.elapsed(), |t| Duration::from_secs_f64(t.gpu_seconds));
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
