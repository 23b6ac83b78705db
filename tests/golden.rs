//! Golden tests: our GPU forward pass (and our CPU reference) against the logits and feature
//! maps that the real frameworks (TF-slim, Keras, timm, torchvision) computed for the same
//! checkpoints. Fixtures are made by `tools/gen_fixtures.py`; see `tests/fixtures/manifest.json`.
//!
//! Tolerance: |Δ| ≤ 1e-3 · max(1, max|reference|) for the logits and for every feature map of
//! every case (the frameworks run f32 in their own
//! summation order; we fold batch norm into the weights, which moves the rounding).

use resnet_wgpu::cpu;
use resnet_wgpu::gpu::session::Session;
use resnet_wgpu::gpu::{AdapterChoice, GpuContext};
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::layout::{nchw_to_nhwc, nhwc_to_nchw};
use resnet_wgpu::model::Flavour;
use resnet_wgpu::model::load::{LoadOptions, load_network};
use resnet_wgpu::tensor_file::read_tensor;
use std::path::{Path, PathBuf};

const REL_TOL: f32 = 1e-3;

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

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json"))
        .expect("tests/fixtures/manifest.json (run tools/gen_fixtures.py)");
    let v: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let usizes = |x: &serde_json::Value| -> Vec<usize> {
        x.as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_u64().expect("int") as usize)
            .collect()
    };
    v.as_array()
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
        .collect()
}

/// Largest |a - b| relative to max(1, max|b|).
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn every_flavour_matches_its_framework() {
    let ctx = GpuContext::new(&AdapterChoice::default())
        .unwrap_or_else(|e| panic!("{e}\n(the golden tests need a wgpu adapter; see .ci/run)"));
    eprintln!("adapter: {}", ctx.summary());
    let cases = cases();
    if std::env::var_os("RESNET_FIXTURES").is_none() {
        assert!(
            cases.len() >= 20,
            "expected the full fixture set, found {}",
            cases.len()
        );
    }
    let mut failures = Vec::new();
    let mut worst: Vec<(Flavour, f32, f32)> = Vec::new();
    for case in &cases {
        let dir = fixtures();
        let net = load_network(
            &dir.join(format!("{}.weights.safetensors", case.name)),
            &LoadOptions::default(),
        )
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

        let io = dir.join(format!("{}.io.safetensors", case.name));
        let input = read_tensor(&io, "input").unwrap();
        let [n, c, h, w] = input.shape[..] else {
            panic!("{}: input is not 4-D", case.name)
        };
        let expected = read_tensor(&io, "logits").unwrap();
        let graph = lower(arch, &net.params, h, w, &LowerOptions { features: true }).unwrap();

        // The CPU reference of the lowered graph: checks lowering and folding on their own.
        let cpu_all = cpu::run_graph(&graph, n, &nchw_to_nhwc(&input.data, n, c, h, w));
        let cpu_logits = cpu_all[graph.logits].as_ref().expect("cpu logits");
        let cpu_err = rel_err(cpu_logits, &expected.data);

        let session = Session::new(&ctx, graph.clone(), n).unwrap();
        let out = session.run_nchw(&input.data, n).unwrap();
        let gpu_err = rel_err(&out.logits, &expected.data);

        // Where the first difference appears (GPU and CPU), for the failure message.
        let mut first_bad = String::new();
        for f in &out.features {
            let want = read_tensor(&io, &f.name).unwrap();
            let t = graph
                .features
                .iter()
                .find(|(name, _)| *name == f.name)
                .unwrap()
                .1;
            let info = &graph.tensors[t];
            let cpu_map = nhwc_to_nchw(cpu_all[t].as_ref().unwrap(), n, info.h, info.w, info.c);
            let (g, c) = (rel_err(&f.data, &want.data), rel_err(&cpu_map, &want.data));
            if (g > REL_TOL || c > REL_TOL) && first_bad.is_empty() {
                first_bad = format!(" (first differing map: {} gpu {g:.2e} cpu {c:.2e})", f.name);
            }
        }
        eprintln!(
            "{:<36} {:<12} gpu {gpu_err:.2e}  cpu {cpu_err:.2e}{first_bad}",
            case.name,
            case.flavour.name()
        );
        // Every intermediate map must match too, not only the logits.
        if gpu_err > REL_TOL || cpu_err > REL_TOL || !first_bad.is_empty() {
            failures.push(format!(
                "{}: gpu {gpu_err:.2e} cpu {cpu_err:.2e}{first_bad}",
                case.name
            ));
        }
        match worst.iter_mut().find(|(f, _, _)| *f == case.flavour) {
            Some(e) => {
                e.1 = e.1.max(gpu_err);
                e.2 = e.2.max(cpu_err);
            }
            None => worst.push((case.flavour, gpu_err, cpu_err)),
        }
    }
    for (f, g, c) in &worst {
        eprintln!("worst relative logit error, {f}: gpu {g:.2e}, cpu {c:.2e}");
    }
    assert!(
        failures.is_empty(),
        "beyond {REL_TOL:e}:\n{}",
        failures.join("\n")
    );
}
