//! The GPU session end to end on random networks of every flavour, against the CPU reference
//! of the same lowered graph; sub-batching under tight device limits; input validation.
//! Tolerance: |Δ| ≤ 1e-4 · max(1, max|reference|) (f32 with a different summation order).

mod common;

use resnet_wgpu::cpu;
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::gpu::session::Session;
use resnet_wgpu::graph::{Graph, LowerOptions, lower};
use resnet_wgpu::layout::nchw_to_nhwc;
use resnet_wgpu::model::arch::UnitKind;
use resnet_wgpu::model::random::random_params;
use resnet_wgpu::model::{Arch, Flavour};
use resnet_wgpu::plan::Limits;

const TOL: f64 = 1e-4;

fn context() -> GpuContext {
    common::gpu()
}

fn input(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                / (1 << 23) as f32
                - 1.0
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    common::assert_close(got, want, TOL, what);
}

fn small(flavour: Flavour, unit: UnitKind) -> Arch {
    let widths: &[usize] = match unit {
        UnitKind::Basic => &[8, 12, 16, 20],
        UnitKind::Bottleneck => &[4, 8, 12, 16],
    };
    Arch::new(flavour, unit, &[2, 1, 2, 2], widths, 12, 7)
}

fn graph(arch: &Arch, h: usize, w: usize, features: bool) -> Graph {
    let params = random_params(arch, 11);
    lower(arch, &params, h, w, &LowerOptions { features }).unwrap()
}

#[test]
fn every_flavour_matches_the_cpu_reference_including_features() {
    let ctx = context();
    let (n, h, w) = (3, 37, 45);
    let cases = [
        (Flavour::SlimV2, UnitKind::Bottleneck),
        (Flavour::KerasV2, UnitKind::Bottleneck),
        (Flavour::TimmV2, UnitKind::Bottleneck),
        (Flavour::TimmV2, UnitKind::Basic),
        (Flavour::Torchvision, UnitKind::Bottleneck),
        (Flavour::Torchvision, UnitKind::Basic),
        (Flavour::KerasV1, UnitKind::Bottleneck),
    ];
    for (flavour, unit) in cases {
        let g = graph(&small(flavour, unit), h, w, true);
        let x = input(n * 3 * h * w, 1);
        let reference = cpu::run_graph(&g, n, &nchw_to_nhwc(&x, n, 3, h, w));
        let session = Session::new(&ctx, g.clone(), n).unwrap();
        let out = session.run_nchw(&x, n).unwrap();
        let what = format!("{flavour} {unit:?}");
        assert_close(&out.logits, reference[g.logits].as_ref().unwrap(), &what);
        assert_eq!(out.features.len(), g.features.len());
        for (f, (name, t)) in out.features.iter().zip(&g.features) {
            let info = &g.tensors[*t];
            let want = resnet_wgpu::layout::nhwc_to_nchw(
                reference[*t].as_ref().unwrap(),
                n,
                info.h,
                info.w,
                info.c,
            );
            assert_eq!(&f.name, name);
            assert_close(&f.data, &want, &format!("{what} {name}"));
        }
    }
}

#[test]
fn a_batch_over_the_binding_limit_runs_as_sub_batches_with_the_same_logits() {
    let ctx = context();
    let arch = small(Flavour::SlimV2, UnitKind::Bottleneck);
    let (n, side) = (5, 40);
    let g = graph(&arch, side, side, false);
    let x = input(n * 3 * side * side, 2);
    let whole = Session::new(&ctx, g.clone(), n).unwrap();
    assert_eq!(whole.plan().batch, n);
    // A device whose largest binding holds the arena of two images, not five.
    let one = resnet_wgpu::plan::plan(&g, 1, &Limits::unlimited())
        .unwrap()
        .arena_bytes;
    let limits = Limits {
        max_binding_bytes: 2 * one + one / 2,
        ..ctx.plan_limits()
    };
    let split = Session::with_limits(&ctx, g.clone(), n, &limits).unwrap();
    assert_eq!(split.plan().batch, 2, "largest sub-batch that fits");
    let a = whole.run_nchw(&x, n).unwrap();
    let b = split.run_nchw(&x, n).unwrap();
    assert_close(&b.logits, &a.logits, "sub-batched vs whole");
    // A smaller batch than planned reuses the session (the trailing sub-batch path).
    let c = whole.run_nchw(&x[..2 * 3 * side * side], 2).unwrap();
    assert_close(
        &c.logits,
        &a.logits[..2 * 7],
        "batch 2 on a batch-5 session",
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let ctx = context();
    let g = graph(&small(Flavour::Torchvision, UnitKind::Basic), 32, 32, false);
    let s = Session::new(&ctx, g, 2).unwrap();
    let e = s.run_nchw(&[0.0; 10], 2).unwrap_err();
    assert!(e.to_string().contains("input values"), "{e}");
    let mut x = vec![0.0; 2 * 3 * 32 * 32];
    x[17] = f32::NAN;
    let e = s.run_nchw(&x, 2).unwrap_err();
    assert!(e.to_string().contains("not finite"), "{e}");
    assert!(s.run_nchw(&[], 0).is_err());
}

#[test]
fn a_session_is_send_and_sync_and_serialises_concurrent_runs() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Session>();
    let ctx = context();
    let g = graph(&small(Flavour::TimmV2, UnitKind::Bottleneck), 33, 33, false);
    let session = Session::new(&ctx, g, 2).unwrap();
    let inputs: Vec<Vec<f32>> = (0..4).map(|i| input(2 * 3 * 33 * 33, 10 + i)).collect();
    let serial: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| session.run_nchw(x, 2).unwrap().logits)
        .collect();
    for (x, got) in inputs.iter().zip(&serial) {
        let reference = cpu::run_graph(session.graph(), 2, &nchw_to_nhwc(x, 2, 3, 33, 33));
        assert_close(
            got,
            reference[session.graph().logits].as_ref().unwrap(),
            "serial run",
        );
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .iter()
            .map(|x| s.spawn(|| session.run_nchw(x, 2).unwrap().logits))
            .collect();
        for (h, want) in handles.into_iter().zip(&serial) {
            assert_eq!(&h.join().unwrap(), want, "same logits from another thread");
        }
    });
}
