//! Tuned plans on the adapter: the tuner's report is the minimum of what it timed, a tuned
//! session runs exactly the table's choice for each step's own shape key, and tuned sessions
//! (including their short last sub-batches, issue 22) give the network's logits: the CPU
//! reference's, or the framework's for the digits.
//!
//! Tolerance: |Δ| ≤ 1e-5 · max(1, max|reference|). Tuning picks kernels, never arithmetic:
//! every variant is f32 with its own summation order (measured worst in the test output).

mod common;

use resnet_wgpu::classifier::{Classifier, ClassifierOptions, Model};
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::gpu::session::{Session, SessionOptions};
use resnet_wgpu::graph::{Graph, LowerOptions, Op, lower};
use resnet_wgpu::model::Arch;
use resnet_wgpu::model::random::{random_input, random_params};
use resnet_wgpu::plan::kernel::{ConvAlgo, ConvVariant, DeviceProfile};
use resnet_wgpu::plan::tuning::{self, Choice, Origin, TuningTable};
use resnet_wgpu::plan::{PlanFor, Precision};
use resnet_wgpu::tune::{TuneOptions, candidates, tune};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TOL: f64 = 1e-5;

fn resnet18_32() -> Graph {
    let arch = Arch::preset("resnet18").unwrap();
    let params = random_params(&arch, 3);
    lower(&arch, &params, 32, 32, &LowerOptions::default()).unwrap()
}

fn session(
    ctx: &GpuContext,
    graph: &Graph,
    batch: usize,
    profile: DeviceProfile,
    tuning: Option<TuningTable>,
    batch_sizes: Vec<usize>,
) -> Session {
    let opts = SessionOptions {
        profile: Some(profile),
        tuning: tuning.map(Arc::new),
        batch_sizes,
        ..Default::default()
    };
    Session::with_options(ctx, graph.clone(), batch, &opts).unwrap()
}

/// The CPU reference's logits of `graph` for an NCHW input of `n` images.
fn cpu_logits(graph: &Graph, input: &[f32], n: usize) -> Vec<f32> {
    let t = &graph.tensors[graph.input];
    common::cpu_logits_and_maps(graph, input, &[n, t.c, t.h, t.w]).0
}

/// `(step, shape key, heuristic choice)` of every conv step of `heuristic` (planned for
/// `batch` images): the key a tuning table names the step by.
fn keyed_convs(graph: &Graph, heuristic: &Session, batch: usize) -> Vec<(usize, String, Choice)> {
    heuristic
        .plan()
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| match (&graph.ops[i], step.conv) {
            (Op::Conv(c), Some(p)) => Some((
                i,
                tuning::key(c, &graph.tensors, batch, p.algo),
                Choice::of(&p),
            )),
            _ => None,
        })
        .collect()
}

/// Checks that every conv step of `tuned` runs the choice `table` holds under the step's own
/// key; returns how many steps differ from the heuristic's choice.
fn assert_runs_the_table(
    graph: &Graph,
    heuristic: &Session,
    tuned: &Session,
    table: &TuningTable,
    batch: usize,
) -> usize {
    let mut changed = 0;
    let convs = keyed_convs(graph, heuristic, batch);
    assert!(!convs.is_empty());
    for (i, key, heuristic_choice) in convs {
        let step = &tuned.plan().steps[i];
        let c = step.conv.expect("a conv step");
        let want = table
            .get(&key)
            .unwrap_or_else(|| panic!("{}: no entry for its key {key}", step.name));
        assert_eq!(Choice::of(&c), want, "{} ({key})", step.name);
        assert_eq!(c.origin, Origin::Tuned, "{}", step.name);
        changed += usize::from(want != heuristic_choice);
    }
    changed
}

/// Tunes resnet18 at 32x32, batch 2, for `profile`; checks the report against its own
/// timings, the tuned plan against the table, and both sessions against the CPU reference.
fn tune_and_check(profile: DeviceProfile) {
    let ctx = common::gpu();
    let graph = resnet18_32();
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
        assert!(
            !s.candidates.is_empty() && s.candidates.len() <= n_candidates,
            "{s:?}"
        );
        assert!(s.heuristic_ms.is_finite() && s.heuristic_ms > 0.0, "{s:?}");
        assert!(
            s.candidates
                .iter()
                .all(|(_, ms)| ms.is_finite() && *ms > 0.0),
            "{s:?}"
        );
        // The best is the fastest of everything timed (the heuristic's own run included),
        // and the table stores it under the shape's key.
        let (best, best_ms) = s
            .candidates
            .iter()
            .map(|(name, ms)| (name.as_str(), *ms))
            .fold((s.heuristic.as_str(), s.heuristic_ms), |b, c| {
                if c.1 < b.1 { c } else { b }
            });
        assert_eq!((s.best.as_str(), s.best_ms), (best, best_ms), "{s:?}");
        assert_eq!(
            report.table.get(&s.key).unwrap().describe(),
            s.best,
            "{s:?}"
        );
    }
    assert!(report.heuristic_s > 0.0 && report.tuned_s > 0.0);
    let software = if profile.software { "software" } else { "gpu" };
    assert_eq!(report.device.profile, software);

    let heuristic = session(&ctx, &graph, 2, profile, None, Vec::new());
    let tuned = session(
        &ctx,
        &graph,
        2,
        profile,
        Some(report.table.clone()),
        Vec::new(),
    );
    assert_runs_the_table(&graph, &heuristic, &tuned, &report.table, 2);
    let input = random_input(2 * 3 * 32 * 32, 11);
    let want = cpu_logits(&graph, &input, 2);
    for (name, s) in [("heuristic", &heuristic), ("tuned", &tuned)] {
        let got = s.run_nchw(&input, 2).unwrap();
        let e = common::assert_close(&got.logits, &want, TOL, &format!("{software} {name}"));
        eprintln!("{software} {name}: relative error {e:.2e} against the CPU reference");
    }
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

/// A choice for `op` other than `heuristic` that `profile` runs and the plan honours as
/// written: the first of the tuner's candidates that qualifies.
fn another_choice(op: &Op, heuristic: Choice, algo: ConvAlgo, profile: &DeviceProfile) -> Choice {
    let Op::Conv(c) = op else {
        unreachable!("a conv step")
    };
    // The subgroup variant reads 64-bit words: 4-aligned channels, or the plan takes another.
    let words = c.cin % 4 == 0 && c.cout % 4 == 0 && c.split.is_none();
    candidates(profile)
        .into_iter()
        .find(|&ch| {
            ch != heuristic
                && ch.runs_on(profile, algo, c.kh * c.kw * c.cin)
                && (ch.variant != ConvVariant::Subgroup || words)
                // Split K is a direct conv's choice, and splits every K it is given.
                && (ch.splits == 1 || matches!(algo, ConvAlgo::Direct | ConvAlgo::SplitK(_)))
        })
        .unwrap_or_else(|| panic!("{}: no other choice than {heuristic:?}", c.name))
}

/// A table written here, naming another kernel than the heuristic's for every conv shape:
/// each step runs its own key's entry, and the logits are the CPU reference's, in both kernel
/// mixes.
#[test]
fn a_table_that_overrides_every_shape_is_run_step_by_step() {
    let ctx = common::gpu();
    let graph = resnet18_32();
    let input = random_input(2 * 3 * 32 * 32, 5);
    let want = cpu_logits(&graph, &input, 2);
    for wanted in [PlanFor::Software.profile(), PlanFor::Gpu.profile()] {
        // What this adapter can run of that mix (a GPU has no subgroup variant of ours): the
        // choices below are ones the plan honours here.
        let profile = resnet_wgpu::engine::resolve_profile(&ctx, Some(wanted)).unwrap();
        let heuristic = session(&ctx, &graph, 2, profile, None, Vec::new());
        let mut table = TuningTable::default();
        for (i, key, choice) in keyed_convs(&graph, &heuristic, 2) {
            let algo = heuristic.plan().steps[i].algo();
            let other = another_choice(&graph.ops[i], choice, algo, &profile);
            table.entries.insert(key, other);
        }
        assert_eq!(table.len(), 12, "one entry per distinct shape");
        let tuned = session(&ctx, &graph, 2, profile, Some(table.clone()), Vec::new());
        let convs = keyed_convs(&graph, &heuristic, 2).len();
        let changed = assert_runs_the_table(&graph, &heuristic, &tuned, &table, 2);
        assert_eq!(changed, convs, "every conv step runs another kernel");
        let got = tuned.run_nchw(&input, 2).unwrap();
        let what = format!("software {} overridden", profile.software);
        let e = common::assert_close(&got.logits, &want, TOL, &what);
        eprintln!("{what}: {changed} of {convs} convs changed, relative error {e:.2e}");
    }
}

/// A session keeps a tuned table's choices for every sub-batch size it runs: the full one, a
/// declared smaller one, and one that is not declared (run on the next planned size), all
/// against the CPU reference, with no pipeline created after the session was built.
#[test]
fn short_sub_batches_keep_the_tuned_kernels_and_compile_nothing() {
    let ctx = common::gpu();
    let graph = resnet18_32();
    let profile = PlanFor::Software.profile();
    let heuristic = session(&ctx, &graph, 4, profile, None, Vec::new());
    // The register kernel everywhere, where the heuristic takes textures or subgroups.
    let mut table = TuningTable::default();
    for (_, key, _) in keyed_convs(&graph, &heuristic, 4) {
        let register = Choice {
            variant: ConvVariant::Register,
            tile: None,
            splits: 1,
        };
        table.entries.insert(key, register);
    }
    let tuned = session(&ctx, &graph, 4, profile, Some(table.clone()), vec![2]);
    let changed = assert_runs_the_table(&graph, &heuristic, &tuned, &table, 4);
    assert!(changed > 0, "the heuristic takes another kernel somewhere");
    let sizes: Vec<usize> = tuned
        .plan()
        .sub_batch_sizes
        .iter()
        .map(|s| s.images)
        .collect();
    assert_eq!(sizes, [2, 4]);
    for sub in &tuned.plan().sub_batch_sizes {
        for (step, c) in tuned.plan().steps.iter().zip(&sub.convs) {
            if let Some(c) = c {
                assert_eq!(c.gemm.variant, ConvVariant::Register, "{}", step.name);
            }
        }
    }
    let built = tuned.pipeline_count();
    assert!(built > 0);
    for n in [4, 2, 3, 1] {
        let input = random_input(n * 3 * 32 * 32, 40 + n as u64);
        let got = tuned.run_nchw(&input, n).unwrap();
        assert_eq!(got.logits.len(), n * graph.classes());
        let e = common::assert_close(
            &got.logits,
            &cpu_logits(&graph, &input, n),
            TOL,
            &format!("{n} images"),
        );
        eprintln!("{n} images on a tuned batch-4 session: relative error {e:.2e}");
    }
    assert_eq!(tuned.pipeline_count(), built, "a run created a pipeline");
}

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/digits")
}

/// Issue 22 through the library: a tuning table that avoids the kernel the heuristic picks,
/// a classifier of 4 images per pass given 7 (a short last batch): all 7 logits are the
/// framework's (PyTorch, `assets/digits/expected.json`).
#[test]
fn a_tuned_classifier_runs_a_short_last_batch() {
    let ctx = common::gpu();
    let model = Model::load(digits().join("digits.safetensors")).unwrap();
    let preprocess = model.preprocess().with_overrides(Some(32), Some(32), false);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(digits().join("expected.json")).unwrap())
            .unwrap();
    let images = &expected["images"].as_array().unwrap()[..7];
    let mut input = Vec::new();
    let mut want = Vec::new();
    for i in images {
        let img = preprocess
            .load(&digits().join(i["file"].as_str().unwrap()))
            .unwrap();
        input.extend(preprocess.apply(&img).unwrap());
        want.extend(
            i["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32),
        );
    }
    let classifier = |tuning| {
        let opts = ClassifierOptions {
            max_batch: 4,
            preprocess: Some(preprocess),
            tuning,
            ..Default::default()
        };
        Classifier::with_context(&model, &ctx, &opts).unwrap()
    };
    let heuristic = classifier(None);
    let graph = heuristic.session().graph().clone();
    let mut table = TuningTable::default();
    let mut avoided = 0;
    for (_, key, choice) in keyed_convs(&graph, heuristic.session(), 4) {
        avoided += usize::from(choice.variant != ConvVariant::Register);
        let register = Choice {
            variant: ConvVariant::Register,
            tile: None,
            splits: 1,
        };
        table.entries.insert(key, register);
    }
    assert!(
        avoided > 0,
        "the heuristic picks another kernel than register somewhere"
    );
    let tuned = classifier(Some(Arc::new(table.clone())));
    assert_runs_the_table(&graph, heuristic.session(), tuned.session(), &table, 4);
    let built = tuned.session().pipeline_count();
    for (name, c) in [("heuristic", &heuristic), ("tuned", &tuned)] {
        let got = c.logits(&input, 7).unwrap();
        assert_eq!(got.len(), 7 * 10);
        let e = common::assert_close(&got, &want, TOL, name);
        eprintln!("digits, {name}, 7 images as 4 + 3: relative error {e:.2e}");
    }
    assert_eq!(tuned.session().pipeline_count(), built);
}
