//! `resnet_wgpu::tune` on the adapter: the tuner times every candidate, the tuned plan runs
//! its choices and gives the heuristic plan's logits (tuning picks kernels, never arithmetic:
//! |Δ| ≤ 1e-4 · max(1, max|logit|), f32 with another summation order).

mod common;

use resnet_wgpu::gpu::session::{Session, SessionOptions};
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::model::Arch;
use resnet_wgpu::model::random::{random_input, random_params};
use resnet_wgpu::plan::kernel::DeviceProfile;
use resnet_wgpu::plan::tuning::{Choice, Origin};
use resnet_wgpu::plan::{PlanFor, Precision};
use resnet_wgpu::tune::{TuneOptions, candidates, tune};
use std::sync::Arc;

/// Tunes resnet18 at 32x32, batch 2, for `profile`, and checks the report and the tuned plan.
fn tune_and_check(profile: DeviceProfile) {
    let ctx = common::gpu();
    let arch = Arch::preset("resnet18").unwrap();
    let params = random_params(&arch, 3);
    let graph = lower(&arch, &params, 32, 32, &LowerOptions::default()).unwrap();
    let opts = TuneOptions {
        precision: Precision::F32,
        profile: Some(profile),
        repeats: 1,
    };
    let report = tune(&ctx, &graph, 2, &opts).unwrap();
    // resnet18 at 32x32 has 12 distinct conv shapes (stem, 4 stages x (3x3, 3x3 s2, 1x1 s2)
    // minus stage 1's downsampling, classifier).
    assert_eq!(report.shapes.len(), 12, "{:#?}", report.shapes);
    assert_eq!(report.table.len(), 12);
    let n_candidates = candidates(&profile).len();
    for s in &report.shapes {
        assert!(s.best_ms.is_finite() && s.best_ms > 0.0, "{s:?}");
        assert!(s.best_ms <= s.heuristic_ms, "{s:?}");
        assert!(
            !s.candidates.is_empty() && s.candidates.len() <= n_candidates,
            "{s:?}"
        );
        assert!(s.candidates.iter().all(|(_, ms)| ms.is_finite()), "{s:?}");
    }
    assert!(report.heuristic_s > 0.0 && report.tuned_s > 0.0);
    let software = if profile.software { "software" } else { "gpu" };
    assert_eq!(report.device.profile, software);

    // The tuned session: every conv takes the table's choice, and the logits are the
    // heuristic session's.
    let session = |tuning| {
        let opts = SessionOptions {
            profile: Some(profile),
            tuning,
            ..Default::default()
        };
        Session::with_options(&ctx, graph.clone(), 2, &opts).unwrap()
    };
    let heuristic = session(None);
    let tuned = session(Some(Arc::new(report.table.clone())));
    for step in &tuned.plan().steps {
        if let Some(c) = step.conv {
            assert_eq!(c.origin, Origin::Tuned, "{}", step.name);
            assert!(report.table.entries.values().any(|&t| t == Choice::of(&c)));
        }
    }
    let input = random_input(2 * 3 * 32 * 32, 11);
    let want = heuristic.run_nchw(&input, 2).unwrap();
    let got = tuned.run_nchw(&input, 2).unwrap();
    assert_eq!(got.logits.len(), 2 * arch.classes);
    common::assert_close(&got.logits, &want.logits, 1e-4, software);
}

#[test]
fn tuning_the_software_kernel_mix() {
    tune_and_check(PlanFor::Software.profile());
}

/// The GPU kernel mix on this adapter: every shared tile and split-K count is a candidate.
#[test]
fn tuning_the_gpu_kernel_mix() {
    tune_and_check(PlanFor::Gpu.profile());
}
