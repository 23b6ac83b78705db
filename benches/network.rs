//! The whole network (resnet_v2_50, 224x224) at batch 1 and 8, wall time per batch including
//! upload and read-back, as `resnet bench` measures it. Throughput in images.
//!
//! `cargo bench --bench network`; on lavapipe this takes a few minutes (batch 8 dominates).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use resnet_wgpu::gpu::session::Session;
use resnet_wgpu::gpu::{AdapterChoice, GpuContext};
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::model::Arch;
use resnet_wgpu::model::random::random_params;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let ctx = GpuContext::new(&AdapterChoice::default()).expect("a wgpu adapter");
    let arch = Arch::preset("resnet_v2_50").expect("preset");
    let params = random_params(&arch, 0);
    let graph = lower(&arch, &params, 224, 224, &LowerOptions::default()).expect("lower");
    let mut group = c.benchmark_group(format!("resnet_v2_50 224 ({})", ctx.info.name));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1));
    for batch in [1usize, 8] {
        let session = Session::new(&ctx, graph.clone(), batch).expect("session");
        let input = vec![0.25f32; batch * 3 * 224 * 224];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch {batch}"), |b| {
            b.iter(|| session.run_nchw(&input, batch).expect("run"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
