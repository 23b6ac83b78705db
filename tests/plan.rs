//! The planner on real lowered ResNets (no GPU): every plan passes the invariant checker, the
//! arena stays within 10% of the lower bound, sub-batching and the device-limit errors behave.

use resnet_wgpu::Error;
use resnet_wgpu::graph::{Graph, LowerOptions, lower};
use resnet_wgpu::model::arch::{Family, UnitKind};
use resnet_wgpu::model::params::{BatchNorm, ConvWeights, UnitParams};
use resnet_wgpu::model::{Arch, Params};
use resnet_wgpu::plan::{Limits, Plan, plan};

/// Parameters of the right shapes (values are irrelevant to the planner).
fn params(arch: &Arch) -> Params {
    let conv = |k: usize, cin: usize, cout: usize| ConvWeights {
        kh: k,
        kw: k,
        cin,
        cout,
        weight: vec![0.01; k * k * cin * cout],
        bias: None,
    };
    let bn = |c: usize| BatchNorm {
        gamma: vec![1.0; c],
        beta: vec![0.0; c],
        mean: vec![0.0; c],
        var: vec![1.0; c],
        eps: 1e-5,
    };
    let v1 = arch.family() == Family::PostActivation;
    let stages = arch
        .stages
        .iter()
        .enumerate()
        .map(|(s, st)| {
            (0..st.units)
                .map(|u| {
                    let cin = arch.unit_in_channels(s, u);
                    let (w, out) = (st.width, st.out);
                    let bottleneck = arch.unit == UnitKind::Bottleneck;
                    UnitParams {
                        preact: (!v1).then(|| bn(cin)),
                        conv1: if bottleneck {
                            conv(1, cin, w)
                        } else {
                            conv(3, cin, w)
                        },
                        bn1: bn(w),
                        conv2: if bottleneck {
                            conv(3, w, w)
                        } else {
                            conv(3, w, out)
                        },
                        bn2: match (bottleneck, v1) {
                            (true, _) => Some(bn(w)),
                            (false, true) => Some(bn(out)),
                            (false, false) => None,
                        },
                        conv3: bottleneck.then(|| conv(1, w, out)),
                        bn3: (bottleneck && v1).then(|| bn(out)),
                        shortcut: arch
                            .has_projection(s, u)
                            .then(|| (conv(1, cin, out), v1.then(|| bn(out)))),
                    }
                })
                .collect()
        })
        .collect();
    let last = arch.stages.last().expect("stages").out;
    Params {
        input_norm: None,
        stem: conv(7, arch.in_channels, arch.stem_width),
        stem_bn: v1.then(|| bn(arch.stem_width)),
        stages,
        post_norm: (!v1).then(|| bn(last)),
        classifier: ConvWeights {
            bias: Some(vec![0.0; arch.classes]),
            ..conv(1, last, arch.classes)
        },
    }
}

fn graph(preset: &str, side: usize, features: bool) -> Graph {
    let arch = Arch::preset(preset).unwrap();
    lower(
        &arch,
        &params(&arch),
        side,
        side,
        &LowerOptions { features },
    )
    .unwrap()
}

fn checked(g: &Graph, batch: usize, limits: &Limits) -> Plan {
    let p = plan(g, batch, limits).unwrap();
    if let Err(e) = p.check(g, limits) {
        panic!("invalid plan:\n{e}\n{}", p.describe(g));
    }
    p
}

const MIB: f64 = (1u64 << 20) as f64;

#[test]
fn resnet_v2_152_batch_32_at_224() {
    let g = graph("resnet_v2_152", 224, false);
    let t = std::time::Instant::now();
    let p = checked(&g, 32, &Limits::unlimited());
    let took = t.elapsed();
    println!(
        "{}",
        p.describe(&g)
            .lines()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!(
        "resnet_v2_152 batch 32 @224: {} ops, arena {} B ({:.1} MiB), naive {} B ({:.1} MiB), \
         lower bound {} B ({:.1} MiB), arena/lower bound {:.4}; weights {} B; planned in {took:?}",
        g.ops.len(),
        p.arena_bytes,
        p.arena_bytes as f64 / MIB,
        p.naive_bytes,
        p.naive_bytes as f64 / MIB,
        p.lower_bound_bytes,
        p.lower_bound_bytes as f64 / MIB,
        p.arena_ratio(),
        p.weights_bytes,
    );
    assert_eq!((p.batch, p.sub_batches()), (32, 1));
    assert!(p.arena_bytes as f64 <= 1.1 * p.lower_bound_bytes as f64);
    assert!(p.naive_bytes > 10 * p.arena_bytes);
    assert_eq!(p.steps.len(), g.ops.len());
    let j = p.to_json(&g);
    assert_eq!(j["dispatches"].as_array().unwrap().len(), g.ops.len());
    assert_eq!(j["macs_per_image"], g.macs_per_image());
    assert_eq!(j["sub_batch"], 32);
}

#[test]
fn every_family_plans_within_ten_percent_of_the_lower_bound() {
    for preset in [
        "resnet_v2_50",
        "ResNet50V2",
        "resnetv2_18",
        "resnetv2_50",
        "resnet18",
        "resnet34",
        "resnet50",
        "ResNet50",
    ] {
        for (side, batch, features) in [(224, 8, false), (224, 3, true), (97, 1, false)] {
            let g = graph(preset, side, features);
            let p = checked(&g, batch, &Limits::unlimited());
            assert!(
                p.arena_bytes as f64 <= 1.1 * p.lower_bound_bytes as f64,
                "{preset} @{side} batch {batch} features {features}: arena {} vs lower bound {}",
                p.arena_bytes,
                p.lower_bound_bytes
            );
        }
    }
}

#[test]
fn sub_batching_picks_the_largest_sub_batch_that_fits() {
    let g = graph("resnet50", 448, false);
    // At 448 one image's arena (~28 MiB) exceeds every weight slot (<= 9 MiB).
    let one = checked(&g, 1, &Limits::unlimited()).arena_bytes;
    for cap in [one, one * 5 / 2, 7 * one + 12345] {
        let limits = Limits {
            max_binding_bytes: cap,
            ..Limits::unlimited()
        };
        let p = checked(&g, 16, &limits);
        assert!(p.batch < 16 && p.arena_bytes <= cap);
        // One image more would not fit.
        let more = checked(&g, p.batch + 1, &Limits::unlimited());
        assert!(
            more.arena_bytes > cap,
            "cap {cap}: {} would fit too",
            p.batch + 1
        );
        assert_eq!(p.sub_batches(), 16usize.div_ceil(p.batch));
        assert_eq!(p.requested_batch, 16);
    }
}

#[test]
fn an_input_too_big_for_the_device_says_so() {
    let g = graph("resnet50", 1024, false);
    let limits = Limits {
        max_binding_bytes: 128 << 20,
        ..Limits::unlimited()
    };
    match plan(&g, 4, &limits) {
        Err(e @ Error::DeviceLimits(_)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("1024x1024") && msg.contains("128.0 MiB"),
                "{msg}"
            );
            assert!(msg.contains("smaller input size"), "{msg}");
        }
        other => panic!("expected DeviceLimits, got {other:?}"),
    }
}

#[test]
fn weights_spill_into_several_buffers() {
    let g = graph("resnet50", 224, false);
    let p = checked(&g, 1, &Limits::unlimited());
    assert_eq!(p.weight_buffers.len(), 1);
    let biggest = p.weights.iter().map(|w| w.size_bytes).max().unwrap();
    let limits = Limits {
        max_buffer_bytes: 24 << 20,
        ..Limits::unlimited()
    };
    let spilled = checked(&g, 1, &limits);
    assert!(
        spilled.weight_buffers.len() >= 4,
        "{:?}",
        spilled.weight_buffers
    );
    assert!(spilled.weight_buffers.iter().all(|&b| b <= 24 << 20));
    assert_eq!(spilled.weights_bytes, p.weights_bytes);
    let limits = Limits {
        max_binding_bytes: biggest - 1,
        ..Limits::unlimited()
    };
    match plan(&g, 1, &limits) {
        Err(Error::DeviceLimits(msg)) => assert!(msg.contains("op `"), "{msg}"),
        other => panic!("expected DeviceLimits, got {other:?}"),
    }
}

/// Planning never panics: random flavours, depths and widths, input sides from 32 to 10^6 (not
/// square), batches from 1 to 10^12 and random device limits. Every outcome is a plan that
/// passes the invariant checker (with every GEMM within the kernels' u32 range) or a clear
/// error.
#[test]
fn planning_never_panics_on_any_size() {
    use resnet_wgpu::model::Flavour;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Log-uniform in [lo, hi].
    let mut log_uniform = |lo: f64, hi: f64| {
        let t = (next() >> 11) as f64 / (1u64 << 53) as f64;
        (lo.ln() + t * (hi.ln() - lo.ln())).exp().round() as usize
    };
    let (mut planned, mut refused) = (0, 0);
    for i in 0..400 {
        let flavour = Flavour::ALL[i % Flavour::ALL.len()];
        let unit = if i % 3 == 0 {
            UnitKind::Basic
        } else {
            UnitKind::Bottleneck
        };
        let stages = 1 + log_uniform(1.0, 4.0) % 4;
        let units: Vec<usize> = (0..stages).map(|_| log_uniform(1.0, 3.0)).collect();
        let widths: Vec<usize> = (0..stages).map(|_| log_uniform(1.0, 48.0)).collect();
        let arch = Arch::new(
            flavour,
            unit,
            &units,
            &widths,
            log_uniform(1.0, 64.0),
            log_uniform(1.0, 2000.0),
        );
        let (h, w) = (log_uniform(16.0, 1e6), log_uniform(16.0, 1e6));
        let batch = log_uniform(1.0, 1e12);
        let mut limits = Limits::unlimited();
        if i % 2 == 1 {
            limits.max_binding_bytes = log_uniform(1e5, 4e9) as u64;
        }
        let what = format!("{flavour} {unit:?} {units:?} {widths:?} {h}x{w} batch {batch}");
        let graph = match lower(&arch, &params(&arch), h, w, &LowerOptions::default()) {
            Ok(g) => g,
            Err(e) => {
                assert!(
                    h < 32 || w < 32 || e.to_string().contains("address"),
                    "{what}: {e}"
                );
                refused += 1;
                continue;
            }
        };
        match plan(&graph, batch, &limits) {
            Ok(p) => {
                p.check(&graph, &limits)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(p.batch >= 1 && p.batch <= batch, "{what}");
                for s in &p.steps {
                    if let Some(c) = s.conv {
                        let [n, oh, ow, _] = s.output_shape;
                        let rows = match s.winograd() {
                            None => n * oh * ow,
                            Some(t) => n * t.tiles(oh) * t.tiles(ow),
                        };
                        assert_eq!(c.gemm.m as usize, rows, "{what}: {}", s.name);
                        assert!(c.gemm.tiles >= 1, "{what}: {}", s.name);
                    }
                }
                planned += 1;
            }
            Err(e) => {
                assert!(matches!(e, Error::DeviceLimits(_)), "{what}: {e}");
                refused += 1;
            }
        }
    }
    eprintln!("{planned} planned, {refused} refused with an error");
    assert!(
        planned > 50 && refused > 50,
        "{planned} planned, {refused} refused"
    );
}
