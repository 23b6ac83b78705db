//! What runs is what the plan says. Over a grid of networks and plan options (every flavour,
//! basic and bottleneck units, the GPU and software kernel profiles, WebGPU's default limits,
//! f32 and f16, Winograd on and off, split K, textures on and off, several sub-batch sizes):
//! * without a GPU, every plan passes `Plan::check` (which rebuilds its launches from the
//!   graph and checks every binding, grid and copy against the device's limits), and each
//!   step has the launches its algorithm and variant call for;
//! * on the GPU (lavapipe is enough; these FAIL without an adapter), the dispatches a session
//!   records for every planned size are the plan's launches, one for one (label, step,
//!   pipeline key, grid, texture copy), and it creates exactly the plan's distinct pipelines.

mod common;

use resnet_wgpu::gpu::session::{Session, SessionOptions};
use resnet_wgpu::graph::{Graph, Op};
use resnet_wgpu::model::Flavour;
use resnet_wgpu::model::arch::UnitKind;
use resnet_wgpu::plan::PipelineKey;
use resnet_wgpu::plan::launch::FLAGS;
use resnet_wgpu::plan::{
    ConvAlgo, ConvVariant, DeviceProfile, Limits, Plan, PlanOptions, Precision, WinogradPolicy,
    plan_with,
};
use resnet_wgpu::winograd::Tile;
use std::collections::{BTreeSet, HashSet};

use common::nets::{graph, networks, profiles, wide};

/// One point of the grid.
#[derive(Clone, Debug)]
struct Case {
    profile: DeviceProfile,
    precision: Precision,
    limits: Limits,
    batch: usize,
    sizes: Vec<usize>,
}

fn cases() -> Vec<(String, Case)> {
    let webgpu = Limits::from_wgpu(&wgpu::Limits::default(), wgpu::Features::empty());
    let mut out = Vec::new();
    for (name, profile) in profiles() {
        for precision in [Precision::F32, Precision::F16] {
            for (limits_name, limits) in [("unlimited", Limits::unlimited()), ("webgpu", webgpu)] {
                // Batch 1 (split K's small GEMMs on GPUs) and 5 with extra sizes 1 and 2.
                for (batch, sizes) in [(1, vec![]), (5, vec![1, 2])] {
                    out.push((
                        format!("{name}, {}, {limits_name}, batch {batch}", precision.name()),
                        Case {
                            profile,
                            precision,
                            limits,
                            batch,
                            sizes,
                        },
                    ));
                }
            }
        }
    }
    out
}

fn make(g: &Graph, c: &Case) -> Plan {
    let opts = PlanOptions {
        precision: c.precision,
        device: c.profile,
        tuning: None,
        batch_sizes: c.sizes.clone(),
    };
    plan_with(g, c.batch, &c.limits, &opts).unwrap()
}

/// The launches a step's plan calls for: a texture GEMM packs first where its input's
/// channels are not a multiple of 4; split K adds a reduction, Winograd two transforms.
fn launches_of(plan: &Plan, g: &Graph, step: usize) -> usize {
    let Some(cp) = plan.steps[step].conv else {
        return 1;
    };
    let Op::Conv(c) = &g.ops[step] else {
        unreachable!()
    };
    let pack = usize::from(
        cp.gemm.variant == ConvVariant::Texture && !cp.algo.phased() && !c.cin.is_multiple_of(4),
    );
    match cp.algo {
        ConvAlgo::Direct => 1 + pack,
        ConvAlgo::SplitK(_) => 2,
        ConvAlgo::Winograd(_) => 3,
    }
}

/// Each launch's `FLAGS` constant holds every flag its uniform sets (so no path it takes is
/// compiled out), only modules with a `flags` field get one, and specialising adds no
/// pipeline: as many distinct keys as keys with every flag.
fn check_flags(plan: &Plan, what: &str) {
    for l in &plan.launches {
        let mask = l
            .pipeline
            .constants
            .iter()
            .find(|(name, _)| *name == FLAGS)
            .map(|&(_, v)| v);
        let Some(flags) = l.flags() else {
            assert_eq!(mask, None, "{what}: {}", l.label);
            continue;
        };
        let mask = mask.unwrap_or_else(|| panic!("{what}: {} has no FLAGS", l.label));
        assert_eq!(mask.fract(), 0.0, "{what}: {}", l.label);
        assert_eq!(
            flags & !(mask as u32),
            0,
            "{what}: {} sets flags {flags:#x} outside its pipeline's FLAGS {mask}",
            l.label
        );
    }
    let keys: HashSet<&PipelineKey> = plan.launches.iter().map(|l| &l.pipeline).collect();
    let generic: HashSet<PipelineKey> = keys.iter().map(|k| k.generic()).collect();
    assert_eq!(keys.len(), generic.len(), "{what}: FLAGS split a pipeline");
}

#[test]
fn every_plan_of_the_grid_checks_and_launches_what_its_steps_call_for() {
    let mut seen = BTreeSet::new();
    let mut plans = 0;
    let networks = networks();
    for (net, g) in &networks {
        {
            let g = g.clone();
            for (name, c) in cases() {
                let what = format!("{net}, {name}");
                let plan = make(&g, &c);
                plan.check(&g, &c.limits)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                check_flags(&plan, &what);
                plans += 1;
                for sub in &plan.sub_batch_sizes {
                    let mine = &plan.launches[sub.launches.clone()];
                    assert!(mine.iter().all(|l| l.sub_batch == sub.images), "{what}");
                    for step in 0..plan.steps.len() {
                        let n = mine.iter().filter(|l| l.step == step).count();
                        assert_eq!(
                            n,
                            launches_of(&plan, &g, step),
                            "{what}: step {} at {} images",
                            plan.steps[step].name,
                            sub.images
                        );
                    }
                }
                for l in &plan.launches {
                    seen.insert(l.pipeline.entry);
                    if l.copy_before.is_some() {
                        seen.insert("texture copy");
                    }
                }
                for s in &plan.steps {
                    if let Some(cp) = s.conv {
                        seen.insert(cp.gemm.variant.name());
                    }
                }
            }
        }
    }
    assert_eq!(plans, networks.len() * cases().len());
    // The grid reaches every kernel and every kind of binding.
    for want in [
        "conv_register",
        "conv_shared",
        "conv_texture",
        "conv_subgroup",
        "splitk_reduce",
        "winograd_input",
        "winograd_output",
        "pack_texture",
        "texture copy",
        "max_pool",
        "global_avg_pool",
        "bn_relu",
    ] {
        assert!(seen.contains(want), "the grid never plans {want}: {seen:?}");
    }
}

/// A plan whose textures would exceed the device's largest texture takes the buffer variants
/// (the planner's decision, visible in the plan).
#[test]
fn textures_too_large_for_the_device_give_way_to_buffer_kernels() {
    let g = graph(Flavour::Torchvision, UnitKind::Bottleneck, 96);
    let opts = PlanOptions {
        device: DeviceProfile::software(),
        ..Default::default()
    };
    let roomy = plan_with(&g, 8, &Limits::unlimited(), &opts).unwrap();
    assert!(roomy.textures.staging_f32 > 0 && roomy.textures.weights.contains(&true));
    // Textures narrower than one row of 4096 texels hold nothing.
    let tight = Limits {
        max_texture_dimension_2d: 2048,
        ..Limits::unlimited()
    };
    let fallback = plan_with(&g, 8, &tight, &opts).unwrap();
    fallback.check(&g, &tight).unwrap();
    assert!(
        fallback
            .steps
            .iter()
            .filter_map(|s| s.conv)
            .all(|c| c.gemm.variant != ConvVariant::Texture),
        "a texture conv in a plan whose textures do not fit"
    );
    let t = &fallback.textures;
    assert_eq!((t.staging_f32, t.staging_f16), (0, 0));
    assert!(!t.weights.contains(&true));
    // Forcing the texture variant there is an error that says what to do.
    let forced = PlanOptions {
        device: DeviceProfile {
            forced: Some(ConvVariant::Texture),
            ..DeviceProfile::software()
        },
        ..Default::default()
    };
    let e = plan_with(&g, 8, &tight, &forced).unwrap_err().to_string();
    assert!(
        e.contains("RESNET_CONV_VARIANT") && e.contains("texture"),
        "{e}"
    );
}

/// The weights only texture convs read are held once: their buffers are not bound by any
/// launch (the session drops them after the texture copy), and the resident figure counts
/// them once. With Winograd, a conv whose GEMM is the texture variant keeps U in such a buffer
/// and its transforms' bias and pre-activation in a bound slot of their own.
#[test]
fn texture_only_weights_are_held_once() {
    for (flavour, winograd) in [
        (Flavour::Torchvision, WinogradPolicy::Off),
        (Flavour::Torchvision, WinogradPolicy::Auto),
        (Flavour::SlimV2, WinogradPolicy::Force(Tile::F4)),
    ] {
        let g = graph(flavour, UnitKind::Basic, 96);
        let opts = PlanOptions {
            device: DeviceProfile {
                winograd,
                ..DeviceProfile::software()
            },
            ..Default::default()
        };
        let plan = plan_with(&g, 2, &Limits::unlimited(), &opts).unwrap();
        plan.check(&g, &Limits::unlimited()).unwrap();
        let texture_only: Vec<usize> = (0..plan.weight_buffers.len())
            .filter(|&i| !plan.buffer_bound(i))
            .collect();
        assert!(!texture_only.is_empty(), "{:?}", plan.weight_buffers);
        for &i in &texture_only {
            assert!(
                plan.textures.weights[i],
                "buffer {i} is neither bound nor copied"
            );
        }
        // Split Winograd convs: exactly the Winograd steps whose GEMM is the texture variant,
        // with U unbound and the transforms' slot bound and not copied.
        let texture_winograd = plan
            .steps
            .iter()
            .filter(|s| {
                s.winograd().is_some()
                    && s.conv
                        .is_some_and(|c| c.gemm.variant == ConvVariant::Texture)
            })
            .count();
        let split: Vec<usize> = (0..plan.steps.len())
            .filter(|&i| plan.transform_weights[i].is_some())
            .collect();
        assert_eq!(split.len(), texture_winograd, "{winograd:?}");
        assert_eq!(
            texture_winograd > 0,
            winograd != WinogradPolicy::Off,
            "{winograd:?}"
        );
        for &i in &split {
            let t = plan.transform_weights[i].unwrap();
            assert!(
                !plan.buffer_bound(plan.weights[i].buffer),
                "step {i}: U bound"
            );
            assert!(
                plan.buffer_bound(t.buffer),
                "step {i}: transforms' slot unbound"
            );
            assert!(
                !plan.textures.weights[t.buffer],
                "step {i}: transforms' slot copied"
            );
        }
        let buffers: u64 = plan.weight_buffers.iter().sum();
        // The copies are whole texture rows: at most one row of each copy more than its buffer.
        let slack = plan.weight_buffers.len() as u64 * 4096 * 16;
        assert!(
            plan.resident_weight_bytes() <= buffers + slack,
            "resident {} for {buffers} bytes of weights ({winograd:?})",
            plan.resident_weight_bytes()
        );
    }
}

/// On the GPU: the dispatches a session records are the plan's launches, one for one, and
/// the pipelines it creates are the plan's. A cut of the grid (the GPU compiles each new
/// pipeline): every flavour with this adapter's own profile, and one network across the
/// profiles, precisions and textures on and off, and a wide one for split K.
#[test]
fn a_session_records_exactly_the_plans_launches() {
    let ctx = common::gpu();
    let mut runs = Vec::new();
    for flavour in Flavour::ALL {
        runs.push((
            graph(flavour, UnitKind::Bottleneck, 40),
            None,
            Precision::F32,
        ));
    }
    let g = graph(Flavour::Torchvision, UnitKind::Basic, 48);
    for (_, profile) in profiles() {
        for precision in [Precision::F32, Precision::F16] {
            runs.push((g.clone(), Some(profile), precision));
        }
    }
    // Split K: the wide network's deep 3x3 convs on small maps, in a GPU's plan.
    runs.push((wide(96), Some(DeviceProfile::gpu()), Precision::F32));
    runs.push((wide(96), Some(DeviceProfile::gpu()), Precision::F16));
    let total = runs.len();
    let mut seen = BTreeSet::new();
    for (i, (g, profile, precision)) in runs.into_iter().enumerate() {
        let opts = SessionOptions {
            precision,
            profile,
            batch_sizes: vec![1],
            ..Default::default()
        };
        let session = Session::with_options(&ctx, g, 3, &opts).unwrap();
        let plan = session.plan();
        let what = format!("run {i} ({profile:?}, {})", precision.name());
        assert!(plan.sub_batch_sizes.len() >= 2, "{what}");
        for sub in &plan.sub_batch_sizes {
            let got: Vec<_> = session
                .recorded(sub.images)
                .iter()
                .map(|d| {
                    (
                        d.label.clone(),
                        d.step,
                        d.key.to_string(),
                        d.workgroups,
                        d.copy.as_ref().map(|c| (c.offset, c.texels)),
                    )
                })
                .collect();
            let want: Vec<_> = plan
                .launches_for(sub.images)
                .iter()
                .map(|l| {
                    (
                        l.label.clone(),
                        l.step,
                        l.pipeline.to_string(),
                        l.workgroups,
                        l.copy_before.map(|c| (c.offset_bytes, c.texels)),
                    )
                })
                .collect();
            assert_eq!(got.len(), want.len(), "{what}: launches at {}", sub.images);
            assert_eq!(got, want, "{what} at {} images", sub.images);
        }
        assert_eq!(
            session.pipeline_count(),
            plan.pipelines().len(),
            "{what}: pipelines"
        );
        for l in &plan.launches {
            seen.insert(l.pipeline.entry);
        }
    }
    assert_eq!(total, Flavour::ALL.len() + 2 * profiles().len() + 2);
    // The cut reaches Winograd, split K, both texture stagings and every GEMM variant.
    for want in [
        "winograd_input",
        "splitk_reduce",
        "pack_texture",
        "conv_texture",
        "conv_subgroup",
        "conv_register",
        "conv_shared",
    ] {
        assert!(
            seen.contains(want),
            "the sessions never ran {want}: {seen:?}"
        );
    }
}
