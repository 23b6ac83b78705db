//! Golden tests: our CPU reference of the lowered graph (BN folding and lowering on their own,
//! no GPU needed) and our GPU forward pass against the logits and feature maps that the real
//! frameworks (TF-slim, Keras, timm, torchvision) computed for the same checkpoints. Fixtures
//! are made by `tools/gen_fixtures.py`; see `tests/fixtures/manifest.json`.
//!
//! Tolerance: |Δ| ≤ 1e-5 · max(1, max|reference|) for the logits and for every feature map of
//! every case in f32 (the frameworks run f32 in their own summation order; we fold batch norm
//! into the weights, which moves the rounding: measured worst 9.1e-7, see [`REL_TOL`]), so that
//! a framework difference of the size of an epsilon mix-up (1e-5 against 1e-4: ~1e-4 relative)
//! fails. Comparisons are NaN-aware (`tests/common`).

mod common;

use resnet_wgpu::gpu::session::{Session, SessionOptions};
use resnet_wgpu::graph::{Graph, LowerOptions, lower};
use resnet_wgpu::model::Flavour;
use resnet_wgpu::model::load::{LoadOptions, load_network};
use resnet_wgpu::plan::kernel::ConvAlgo;
use resnet_wgpu::plan::{DeviceProfile, Precision, WinogradPolicy};
use resnet_wgpu::tensor_file::{Tensor, read_file, read_tensor};
use resnet_wgpu::winograd::Tile;
use std::path::{Path, PathBuf};

/// f32: the worst error measured over every case, path (CPU, GPU, GPU plan, Winograd F(4,3))
/// and map is 9.1e-7 (printed per case by each test); 1e-5 leaves a factor of ten for
/// other adapters' rounding and catches a 1e-4 drift.
const REL_TOL: f64 = 1e-5;
/// f16 storage: every activation and weight rounded to 11 significant bits (2^-11 = 4.9e-4
/// relative per value), through up to 66 residual units. Measured on the committed fixtures:
/// worst logits 2.1e-3 (timm-v2 small), 1.7e-3 on the 152/200-layer nets; every map within it.
const F16_TOL: f64 = 1e-2;
/// Cases in the committed fixture set (14 flavour cases, 13 depth cases).
const COMMITTED_CASES: usize = 27;

struct Case {
    name: String,
    flavour: Flavour,
    units: Vec<usize>,
    widths: Vec<usize>,
    stem_width: usize,
    classes: usize,
}

/// `RESNET_FIXTURES` points the test at another fixture set, e.g. the full-size 224x224 one
/// that `tools/gen_fixtures.py --full` writes (too big to commit).
fn fixtures() -> PathBuf {
    std::env::var_os("RESNET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// Every case of the manifest; fails if any case's files are missing, so that a partial
/// fixture set cannot pass by running fewer cases.
fn cases() -> Vec<Case> {
    let dir = fixtures();
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap_or_else(|e| {
        panic!(
            "{}/manifest.json: {e} (run tools/gen_fixtures.py)",
            dir.display()
        )
    });
    let v: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let usizes = |x: &serde_json::Value| -> Vec<usize> {
        x.as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_u64().expect("int") as usize)
            .collect()
    };
    let cases: Vec<Case> = v
        .as_array()
        .expect("manifest is a list")
        .iter()
        .map(|c| Case {
            name: c["case"].as_str().expect("case").to_string(),
            flavour: c["flavour"]
                .as_str()
                .expect("flavour")
                .parse()
                .expect("known flavour"),
            units: usizes(&c["units"]),
            widths: usizes(&c["widths"]),
            stem_width: c["stem_width"].as_u64().expect("stem_width") as usize,
            classes: c["classes"].as_u64().expect("classes") as usize,
        })
        .collect();
    let missing: Vec<String> = cases
        .iter()
        .flat_map(|c| [weights_path(&c.name), io_path(&c.name)])
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "the manifest lists {} cases but these files are missing:\n{}",
        cases.len(),
        missing.join("\n")
    );
    if std::env::var_os("RESNET_FIXTURES").is_none() {
        assert_eq!(cases.len(), COMMITTED_CASES, "committed fixture cases");
    } else {
        assert!(!cases.is_empty(), "the manifest lists no cases");
    }
    cases
}

fn weights_path(case: &str) -> PathBuf {
    fixtures().join(format!("{case}.weights.safetensors"))
}

fn io_path(case: &str) -> PathBuf {
    fixtures().join(format!("{case}.io.safetensors"))
}

/// A case's network lowered with features, its input and every framework tensor of its io
/// file (logits and each `feat/*` map).
struct Loaded {
    graph: Graph,
    input: Tensor,
    logits: Tensor,
    /// `(name, NCHW tensor)` for every `feat/*` in the io file.
    features: Vec<(String, Tensor)>,
}

fn load(case: &Case) -> Loaded {
    let net = load_network(&weights_path(&case.name), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let arch = &net.arch;
    assert_eq!(
        arch.flavour, case.flavour,
        "{}: inferred flavour",
        case.name
    );
    assert_eq!(
        arch.stages.iter().map(|s| s.units).collect::<Vec<_>>(),
        case.units,
        "{}: inferred units",
        case.name
    );
    assert_eq!(
        arch.stages.iter().map(|s| s.width).collect::<Vec<_>>(),
        case.widths,
        "{}: inferred widths",
        case.name
    );
    assert_eq!(
        arch.stem_width, case.stem_width,
        "{}: stem width",
        case.name
    );
    assert_eq!(arch.classes, case.classes, "{}: classes", case.name);

    let io = io_path(&case.name);
    let input = read_tensor(&io, "input").unwrap();
    let [_, _, h, w] = input.shape[..] else {
        panic!("{}: input is not 4-D", case.name)
    };
    let bytes = read_file(&io).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| n.starts_with("feat/"))
        .map(str::to_string)
        .collect();
    names.sort();
    let features: Vec<(String, Tensor)> = names
        .into_iter()
        .map(|n| {
            let t = read_tensor(&io, &n).unwrap();
            (n, t)
        })
        .collect();
    let graph = lower(arch, &net.params, h, w, &LowerOptions { features: true }).unwrap();
    // Every map the framework saved is one we produce, and the other way round.
    let mut ours: Vec<&str> = graph.features.iter().map(|(n, _)| n.as_str()).collect();
    ours.sort_unstable();
    let theirs: Vec<&str> = features.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(ours, theirs, "{}: feature maps", case.name);
    let logits = read_tensor(&io, "logits").unwrap();
    Loaded {
        graph,
        input,
        logits,
        features,
    }
}

/// Compares one backend's logits and maps with the framework's; returns the logits' error and
/// the number of maps compared, or a failure line.
fn compare(
    case: &Case,
    loaded: &Loaded,
    logits: &[f32],
    map: impl Fn(&str) -> Vec<f32>,
    tol: f64,
) -> Result<(f64, usize), String> {
    let logit_err = common::rel_err(logits, &loaded.logits.data)
        .map_err(|e| format!("{}: logits: {e}", case.name))?;
    let mut first_bad = None;
    let mut compared = 0;
    for (name, want) in &loaded.features {
        let got = map(name);
        compared += 1;
        match common::rel_err(&got, &want.data) {
            Ok(e) if e <= tol => {}
            Ok(e) => {
                first_bad.get_or_insert(format!("{name} {e:.2e}"));
            }
            Err(why) => {
                first_bad.get_or_insert(format!("{name}: {why}"));
            }
        }
    }
    match first_bad {
        None if logit_err <= tol => Ok((logit_err, compared)),
        bad => Err(format!(
            "{}: logits {logit_err:.2e}, first differing map: {}",
            case.name,
            bad.unwrap_or_else(|| "none".into())
        )),
    }
}

/// Runs `backend` on every case and checks logits and all maps; prints the worst error per
/// flavour.
fn check_all(what: &str, tol: f64, backend: impl FnMut(&Loaded) -> Outputs) {
    check_cases(&cases(), what, tol, backend);
}

/// [`check_all`] over `cases`.
fn check_cases(cases: &[Case], what: &str, tol: f64, mut backend: impl FnMut(&Loaded) -> Outputs) {
    let mut failures = Vec::new();
    let mut worst: Vec<(Flavour, f64)> = Vec::new();
    for case in cases {
        let loaded = load(case);
        let (logits, maps) = backend(&loaded);
        assert_eq!(
            maps.len(),
            loaded.graph.features.len(),
            "{}: {what} returned {} maps",
            case.name,
            maps.len()
        );
        let map = |name: &str| {
            maps.iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{}: {what} produced no {name}", case.name))
                .1
                .clone()
        };
        if let Err(e) = top1_agrees(&logits, &loaded.logits.data, loaded.graph.classes(), tol) {
            failures.push(format!("{}: {e}", case.name));
        }
        match compare(case, &loaded, &logits, map, tol) {
            Ok((err, maps)) => {
                eprintln!(
                    "{:<36} {:<12} {what} {err:.2e} ({maps} maps)",
                    case.name,
                    case.flavour.name()
                );
                match worst.iter_mut().find(|(f, _)| *f == case.flavour) {
                    Some(w) => w.1 = w.1.max(err),
                    None => worst.push((case.flavour, err)),
                }
            }
            Err(line) => failures.push(line),
        }
    }
    for (f, e) in &worst {
        eprintln!("worst relative logit error, {f}: {what} {e:.2e}");
    }
    assert!(
        failures.is_empty(),
        "{what} beyond {tol:e} (or not comparable):\n{}",
        failures.join("\n")
    );
}

/// Top-1 must agree wherever the framework's top-1/top-2 gap exceeds twice the tolerance
/// (in logits, relative to max(1, max |logit|)): a narrower gap may legitimately flip.
fn top1_agrees(got: &[f32], want: &[f32], classes: usize, tol: f64) -> Result<(), String> {
    for (i, (g, w)) in got.chunks(classes).zip(want.chunks(classes)).enumerate() {
        let scale = w.iter().fold(1.0f64, |m, &v| m.max(f64::from(v).abs()));
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
        if classes < 2 {
            continue;
        }
        let gap = f64::from(w[order[0]] - w[order[1]]) / scale;
        let top = (0..classes).max_by(|&a, &b| g[a].total_cmp(&g[b])).unwrap();
        if gap > 2.0 * tol && top != order[0] {
            return Err(format!(
                "image {i}: top-1 {top}, the framework's {} (gap {gap:.2e})",
                order[0]
            ));
        }
    }
    Ok(())
}

/// The GL backend, which a machine without a Vulkan driver falls back to (OpenGL 4.3+ or GLES
/// 3.1 compute; here Mesa's llvmpipe through EGL): every small case (both input sizes, every
/// flavour: 14 of the 27; the deep nets add only time on GL's slow compile) at the golden
/// tolerance. Without a GL adapter it fails, saying what to install.
#[test]
fn the_gl_backend_matches_every_framework_on_the_small_cases() {
    use resnet_wgpu::gpu::{AdapterChoice, Backend, GpuContext};
    let choice = AdapterChoice {
        backend: Some(Backend::Gl),
        adapter: None,
    };
    let ctx = GpuContext::new(&choice).unwrap_or_else(|e| {
        panic!(
            "{e}\nthe GL test needs an OpenGL adapter: on a machine without a GPU install \
             Mesa's (Debian: apt-get install libegl1 libgl1-mesa-dri)"
        )
    });
    assert_eq!(ctx.summary().backend, "Gl", "{}", ctx.summary());
    eprintln!("adapter: {}", ctx.summary());
    let small: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.name.contains("_small_"))
        .collect();
    assert_eq!(small.len(), 14, "the small cases of the committed set");
    check_cases(&small, "gl", REL_TOL, |l| {
        gpu_run(&ctx, l, &SessionOptions::default())
    });
}

/// Lowering and BN folding against the frameworks, with the naive CPU reference: needs no GPU.
#[test]
fn the_cpu_reference_matches_every_framework() {
    check_all("cpu", REL_TOL, |l| {
        common::cpu_logits_and_maps(&l.graph, &l.input.data, &l.input.shape)
    });
}

#[test]
fn the_gpu_matches_every_framework() {
    let ctx = common::gpu();
    eprintln!("adapter: {}", ctx.summary());
    check_all("gpu", REL_TOL, |l| {
        gpu_run(&ctx, l, &SessionOptions::default())
    });
}

/// The kernel mix and tiles a hardware GPU gets (`--plan-for gpu`: the workgroup-memory
/// variant, register tiles for small layers, its Winograd choices), executed here on whatever
/// adapter there is: the GPU path tested end to end without a GPU.
#[test]
fn the_gpu_plan_matches_every_framework() {
    let ctx = common::gpu();
    let opts = SessionOptions {
        profile: Some(DeviceProfile::gpu()),
        ..Default::default()
    };
    let kinds = std::cell::RefCell::new(std::collections::BTreeMap::new());
    check_all("gpu plan", REL_TOL, |l| {
        let (out, plan) = gpu_run_plan(&ctx, l, &opts);
        for c in plan.steps.iter().filter_map(|s| s.conv) {
            let kind = match c.algo {
                ConvAlgo::Direct => c.gemm.variant.name().to_string(),
                a => a.name(),
            };
            *kinds.borrow_mut().entry(kind).or_insert(0usize) += 1;
        }
        out
    });
    // The GPU mix really ran. These fixtures are narrow (at most 64 channels) and small
    // (64x64 at most), so a GPU's heuristic gives them its small-layer kernels: the register
    // tiles and Winograd F(2,3); no software-only variant. The workgroup-memory GEMMs and
    // split K need wider layers: `the_gpu_plans_shared_and_split_k_kernels_are_exact` below.
    let kinds = kinds.into_inner();
    eprintln!("gpu plan conv steps by kind: {kinds:?}");
    for kind in ["register", "F(2,3)"] {
        assert!(
            kinds.get(kind).is_some_and(|&n| n > 0),
            "no {kind} step: {kinds:?}"
        );
    }
    for kind in ["texture", "subgroup"] {
        assert!(
            !kinds.contains_key(kind),
            "a {kind} step in a GPU plan: {kinds:?}"
        );
    }
}

/// The GPU plan's workgroup-memory GEMMs (`shared`) and split K, which the narrow fixtures
/// never get: ResNet-18 at full width, 64x64, 4 images, planned for a GPU (the stem fills
/// enough workgroups for a shared tile; the 2x2 maps of stage 4 with K = 4608 split K), run
/// here and compared with the CPU reference of the same graph, at the golden tolerance. (The
/// CPU reference matches every framework: `the_cpu_reference_matches_every_framework`.)
#[test]
fn the_gpu_plans_shared_and_split_k_kernels_are_exact() {
    use resnet_wgpu::model::Arch;
    use resnet_wgpu::model::random::{random_input, random_params};
    let ctx = common::gpu();
    let arch = Arch::preset("resnet18").unwrap();
    let params = random_params(&arch, 9);
    let graph = lower(&arch, &params, 64, 64, &LowerOptions::default()).unwrap();
    let opts = SessionOptions {
        profile: Some(DeviceProfile::gpu()),
        ..Default::default()
    };
    let session = Session::with_options(&ctx, graph.clone(), 4, &opts).unwrap();
    let convs: Vec<_> = session.plan().steps.iter().filter_map(|s| s.conv).collect();
    let shared = convs
        .iter()
        .filter(|c| c.algo == ConvAlgo::Direct && c.gemm.variant.name() == "shared")
        .count();
    let split = convs
        .iter()
        .filter(|c| matches!(c.algo, ConvAlgo::SplitK(_)))
        .count();
    eprintln!(
        "resnet18 64x64 b4, gpu plan: {shared} shared, {split} split-K of {} convs",
        convs.len()
    );
    assert!(shared > 0 && split > 0, "{shared} shared, {split} split-K");
    let x = random_input(4 * 3 * 64 * 64, 12);
    let got = session.run_nchw(&x, 4).unwrap();
    let want = common::cpu_logits_and_maps(&graph, &x, &[4, 3, 64, 64]).0;
    let e = common::assert_close(&got.logits, &want, REL_TOL, "resnet18 gpu plan");
    eprintln!("resnet18 64x64 b4, gpu plan: relative error {e:.2e}");
}

/// Every eligible 3x3 conv as Winograd F(4,3) (the auto rule leaves the small maps of these
/// fixtures direct or F(2,3)): the transforms on whole networks, at the same tolerance.
#[test]
fn the_gpu_with_winograd_everywhere_matches_every_framework() {
    let ctx = common::gpu();
    let own = resnet_wgpu::gpu::kernels::adapter_profile(&ctx.device);
    let opts = SessionOptions {
        profile: Some(DeviceProfile {
            winograd: WinogradPolicy::Force(Tile::F4),
            ..own
        }),
        ..Default::default()
    };
    let (mut f4, mut eligible) = (0usize, 0usize);
    check_all("gpu winograd F(4,3)", REL_TOL, |l| {
        let (out, plan) = gpu_run_plan(&ctx, l, &opts);
        for (op, step) in l.graph.ops.iter().zip(&plan.steps) {
            if let resnet_wgpu::graph::Op::Conv(c) = op {
                let is_eligible = (c.kh, c.kw, c.stride, c.pad) == (3, 3, 1, 1)
                    && c.cin % 4 == 0
                    && c.cout % 4 == 0
                    && c.split.is_none();
                eligible += usize::from(is_eligible);
                f4 += usize::from(step.winograd() == Some(Tile::F4));
                assert_eq!(
                    step.winograd() == Some(Tile::F4),
                    is_eligible,
                    "{}: every eligible conv and no other takes F(4,3)",
                    step.name
                );
            }
        }
        out
    });
    eprintln!("F(4,3) convs: {f4} of {eligible} eligible");
    assert!(
        f4 > 0 && f4 == eligible,
        "{f4} F(4,3) of {eligible} eligible convs"
    );
}

/// f16 storage (activations and weights, f32 arithmetic) against the same framework outputs.
/// Tolerance [`F16_TOL`], measured: see its comment.
#[test]
fn the_gpu_in_f16_matches_every_framework() {
    let ctx = common::gpu();
    let opts = SessionOptions {
        precision: Precision::F16,
        ..Default::default()
    };
    check_all("gpu f16", F16_TOL, |l| gpu_run(&ctx, l, &opts));
}

type Outputs = (Vec<f32>, Vec<(String, Vec<f32>)>);

fn gpu_run(ctx: &resnet_wgpu::gpu::GpuContext, l: &Loaded, opts: &SessionOptions) -> Outputs {
    gpu_run_plan(ctx, l, opts).0
}

/// As [`gpu_run`], also returning the plan that ran.
fn gpu_run_plan(
    ctx: &resnet_wgpu::gpu::GpuContext,
    l: &Loaded,
    opts: &SessionOptions,
) -> (Outputs, resnet_wgpu::plan::Plan) {
    let n = l.input.shape[0];
    let session = Session::with_options(ctx, l.graph.clone(), n, opts).unwrap();
    let out = session.run_nchw(&l.input.data, n).unwrap();
    let maps = out.features.into_iter().map(|f| (f.name, f.data)).collect();
    ((out.logits, maps), session.plan().clone())
}
