//! Checkpoint loading in all five flavours: random params → export → load gives the same
//! params and arch back (in memory and through a file), detection, the override, and every
//! failure mode with the error variant and the tensor named.

mod common;

use resnet_wgpu::Error;
use resnet_wgpu::model::arch::{Flavour, PRESETS, UnitKind};
use resnet_wgpu::model::load::{
    LoadOptions, TensorData, detect_flavour, export_tensors, load_network, network_from_tensors,
    save_network,
};
use resnet_wgpu::model::random::random_params;
use resnet_wgpu::model::{Arch, Network};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::collections::HashMap;
use std::path::PathBuf;

type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;
type Edit = dyn Fn(&mut Tensors);

fn net(arch: Arch, seed: u64) -> Network {
    Network {
        params: random_params(&arch, seed),
        arch,
    }
}

/// A per-test file name in the temp dir (no tempfile crate; tests run in parallel).
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "resnet-wgpu-load-{}-{tag}.safetensors",
        std::process::id()
    ))
}

/// A preset by its exact name. (`Arch::preset` matches case-insensitively, so `ResNet50` finds
/// torchvision's `resnet50` first.)
fn preset(name: &str) -> Result<Arch, ()> {
    PRESETS
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.arch())
        .ok_or(())
}

fn small(flavour: Flavour, unit: UnitKind) -> Arch {
    Arch::new(flavour, unit, &[2, 3, 1, 2], &[4, 8, 16, 32], 8, 10)
}

/// The archs every flavour must round-trip: reduced-width standard shapes, odd depths, three
/// and five stages, one-unit stages, grey input, a non-4x bottleneck expansion.
fn archs(flavour: Flavour) -> Vec<Arch> {
    let mut v = Vec::new();
    for unit in [UnitKind::Bottleneck, UnitKind::Basic] {
        v.push(small(flavour, unit));
        v.push(Arch::new(flavour, unit, &[1, 2, 1], &[4, 4, 8], 4, 3));
        v.push(Arch::new(
            flavour,
            unit,
            &[1, 1, 2, 1, 1],
            &[2, 4, 4, 8, 8],
            6,
            7,
        ));
        let mut grey = Arch::new(flavour, unit, &[3, 1], &[8, 4], 16, 2);
        grey.in_channels = 1;
        v.push(grey);
    }
    let mut wide = Arch::new(flavour, UnitKind::Bottleneck, &[2, 2], &[4, 8], 8, 5);
    wide.stages[0].out = 12;
    wide.stages[1].out = 20;
    v.push(wide);
    v
}

fn mismatch(err: Error) -> (String, Vec<String>) {
    let shown = err.to_string();
    match err {
        Error::WeightMismatch { flavour, problems } => {
            assert!(shown.contains(&problems[0]), "{shown}");
            (flavour, problems)
        }
        other => panic!("expected a WeightMismatch, got {other:?}"),
    }
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

#[test]
fn every_flavour_round_trips_in_memory() {
    for f in Flavour::ALL {
        for (i, arch) in archs(f).into_iter().enumerate() {
            let n = net(arch, i as u64);
            let tensors = export_tensors(&n);
            let back = network_from_tensors(&tensors, None)
                .unwrap_or_else(|e| panic!("{f} arch {i}: {e}"));
            assert_eq!(back.arch, n.arch, "{f} arch {i}");
            assert_eq!(back.params, n.params, "{f} arch {i}");
        }
    }
}

#[test]
fn every_preset_family_round_trips_at_reduced_width() {
    for p in PRESETS {
        let full = p.arch();
        let widths: Vec<usize> = full.stages.iter().map(|s| s.width / 16).collect();
        let units: Vec<usize> = full.stages.iter().map(|s| s.units).collect();
        let arch = Arch::new(p.flavour, full.unit, &units, &widths, 4, 11);
        let n = net(arch, 3);
        let back = network_from_tensors(&export_tensors(&n), None)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        assert_eq!(back.arch, n.arch, "{}", p.name);
        assert_eq!(back.params, n.params, "{}", p.name);
        assert_eq!(back.arch.depth(), p.depth, "{}", p.name);
    }
}

#[test]
fn full_size_presets_round_trip_through_files() {
    for name in ["resnet_v2_200", "resnet18", "ResNet50"] {
        let n = net(preset(name).unwrap(), 9);
        let path = temp_path(name);
        save_network(&n, &path).unwrap();
        let back = load_network(&path, &LoadOptions::default());
        std::fs::remove_file(&path).ok();
        let back = back.unwrap();
        assert_eq!(back.arch, n.arch, "{name}");
        assert_eq!(back.params, n.params, "{name}");
    }
}

#[test]
fn every_flavour_round_trips_through_a_file() {
    for f in Flavour::ALL {
        for unit in [UnitKind::Bottleneck, UnitKind::Basic] {
            let n = net(small(f, unit), 5);
            let path = temp_path(&format!("{f}-{unit:?}"));
            save_network(&n, &path).unwrap();
            let back = load_network(&path, &LoadOptions::default());
            std::fs::remove_file(&path).ok();
            let back = back.unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(back.arch, n.arch, "{f}");
            assert_eq!(back.params, n.params, "{f}");
        }
    }
}

#[test]
fn export_uses_each_flavours_own_names_and_layouts() {
    let find = |t: &Tensors, name: &str| -> Vec<usize> {
        t.iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| {
                panic!(
                    "no `{name}` in {:?}",
                    t.iter().map(|x| &x.0).collect::<Vec<_>>()
                )
            })
            .1
            .clone()
    };
    let t = export_tensors(&net(preset("resnet_v2_50").unwrap(), 0));
    assert_eq!(find(&t, "resnet_v2_50/conv1/weights"), [7, 7, 3, 64]);
    assert_eq!(
        find(
            &t,
            "resnet_v2_50/block1/unit_1/bottleneck_v2/shortcut/biases"
        ),
        [256]
    );
    assert_eq!(
        find(
            &t,
            "resnet_v2_50/block1/unit_3/bottleneck_v2/conv2/BatchNorm/moving_variance"
        ),
        [64]
    );
    assert_eq!(find(&t, "resnet_v2_50/logits/weights"), [1, 1, 2048, 1001]);
    let t = export_tensors(&net(preset("ResNet50V2").unwrap(), 0));
    assert_eq!(find(&t, "conv2_block1_0_conv/kernel"), [1, 1, 64, 256]);
    assert_eq!(find(&t, "conv5_block3_3_conv/bias"), [2048]);
    assert_eq!(find(&t, "post_bn/moving_mean"), [2048]);
    assert_eq!(find(&t, "predictions/kernel"), [2048, 1000]);
    let t = export_tensors(&net(preset("resnetv2_50").unwrap(), 0));
    assert_eq!(
        find(&t, "stages.1.blocks.0.downsample.conv.weight"),
        [512, 256, 1, 1]
    );
    assert_eq!(find(&t, "stages.1.blocks.0.norm3.running_var"), [128]);
    assert_eq!(find(&t, "head.fc.weight"), [1000, 2048, 1, 1]);
    let t = export_tensors(&net(preset("resnetv2_18").unwrap(), 0));
    assert_eq!(find(&t, "stages.0.blocks.0.norm2.weight"), [64]);
    assert!(
        !t.iter()
            .any(|(n, _, _)| n.contains("norm3") || n.starts_with("stages.0.blocks.0.downsample"))
    );
    let t = export_tensors(&net(preset("resnet50").unwrap(), 0));
    assert_eq!(find(&t, "layer2.0.downsample.0.weight"), [512, 256, 1, 1]);
    assert_eq!(find(&t, "layer2.0.downsample.1.running_mean"), [512]);
    assert_eq!(find(&t, "fc.weight"), [1000, 2048]);
    assert!(!t.iter().any(|(n, _, _)| n.ends_with("conv1.bias")));
    let t = export_tensors(&net(preset("ResNet50").unwrap(), 0));
    assert_eq!(find(&t, "conv1_bn/gamma"), [64]);
    assert_eq!(find(&t, "conv3_block1_1_conv/bias"), [128]);
    assert_eq!(find(&t, "conv3_block1_0_bn/beta"), [512]);
}

#[test]
fn flavours_are_detected_from_names() {
    for f in Flavour::ALL {
        let t = export_tensors(&net(small(f, UnitKind::Bottleneck), 0));
        let names: Vec<&str> = t.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(detect_flavour(&names).unwrap(), f);
    }
}

/// Renames every tensor and checks the result still loads to the same network.
fn loads_renamed(arch: Arch, rename: impl Fn(&str) -> String) {
    let n = net(arch, 2);
    let t: Tensors = export_tensors(&n)
        .into_iter()
        .map(|(name, s, d)| (rename(&name), s, d))
        .collect();
    let back = network_from_tensors(&t, None).unwrap();
    assert_eq!(back.arch, n.arch);
    assert_eq!(back.params, n.params);
}

#[test]
fn keras_names_may_carry_output_index_and_model_prefix() {
    for f in [Flavour::KerasV1, Flavour::KerasV2] {
        loads_renamed(small(f, UnitKind::Bottleneck), |n| format!("{n}:0"));
        loads_renamed(small(f, UnitKind::Bottleneck), |n| {
            format!("resnet50v2/{n}:0")
        });
        loads_renamed(small(f, UnitKind::Bottleneck), |n| {
            format!("model/functional/{n}")
        });
    }
}

#[test]
fn slim_names_may_sit_under_any_scope() {
    let arch = small(Flavour::SlimV2, UnitKind::Bottleneck);
    let depth = arch.depth();
    let strip = move |n: &str| {
        n.strip_prefix(&format!("resnet_v2_{depth}/"))
            .unwrap()
            .to_string()
    };
    loads_renamed(arch.clone(), |n| format!("{n}:0"));
    loads_renamed(arch.clone(), |n| format!("tower_0/{}", strip(n)));
    loads_renamed(arch, strip);
}

#[test]
fn torch_step_counters_and_global_step_are_ignored() {
    let n = net(small(Flavour::Torchvision, UnitKind::Basic), 4);
    let mut views: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = export_tensors(&n)
        .into_iter()
        .map(|(name, s, d)| {
            (
                name,
                Dtype::F32,
                s,
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    views.push((
        "bn1.num_batches_tracked".into(),
        Dtype::I64,
        vec![],
        7i64.to_le_bytes().to_vec(),
    ));
    views.push((
        "layer1.0.bn2.num_batches_tracked".into(),
        Dtype::I64,
        vec![],
        7i64.to_le_bytes().to_vec(),
    ));
    let path = write_raw("counters", &views);
    let back = load_network(&path, &LoadOptions::default());
    std::fs::remove_file(&path).ok();
    assert_eq!(back.unwrap().params, n.params);
}

fn write_raw(tag: &str, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) -> PathBuf {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, dt, s, b)| (n.as_str(), TensorView::new(*dt, s.clone(), b).unwrap()))
        .collect();
    let path = temp_path(tag);
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

#[test]
fn override_is_obeyed_and_a_wrong_one_is_a_mismatch() {
    let n = net(small(Flavour::KerasV2, UnitKind::Bottleneck), 1);
    let t = export_tensors(&n);
    let back = network_from_tensors(&t, Some(Flavour::KerasV2)).unwrap();
    assert_eq!(back.params, n.params);
    let (flavour, problems) =
        mismatch(network_from_tensors(&t, Some(Flavour::TimmV2)).unwrap_err());
    assert_eq!(flavour, "timm-v2");
    assert!(has(&problems, "look like keras-v2"), "{problems:#?}");
    // Keras v1 and v2 share names up to the preact BNs: forcing v1 on v2 weights lists them.
    let (_, problems) = mismatch(network_from_tensors(&t, Some(Flavour::KerasV1)).unwrap_err());
    assert!(has(&problems, "missing `conv1_bn/gamma`"), "{problems:#?}");
    assert!(
        has(&problems, "unexpected `conv2_block1_preact_bn/gamma`"),
        "{problems:#?}"
    );
    assert!(has(&problems, "unexpected `post_bn/beta`"), "{problems:#?}");
}

#[test]
fn truncated_and_missing_files_are_reported_with_their_path() {
    let n = net(small(Flavour::SlimV2, UnitKind::Bottleneck), 1);
    let path = temp_path("truncated");
    save_network(&n, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for len in [bytes.len() - 1, bytes.len() / 2, 12, 3, 0] {
        std::fs::write(&path, &bytes[..len]).unwrap();
        match load_network(&path, &LoadOptions::default()) {
            Err(e @ Error::Safetensors { .. }) => {
                assert!(e.to_string().contains(&path.display().to_string()))
            }
            other => panic!("{len} bytes: expected Error::Safetensors, got {other:?}"),
        }
    }
    std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}").unwrap();
    assert!(matches!(
        load_network(&path, &LoadOptions::default()),
        Err(Error::Safetensors { .. })
    ));
    std::fs::remove_file(&path).ok();
    assert!(matches!(
        load_network(&path, &LoadOptions::default()),
        Err(Error::Io { .. })
    ));
}

fn edit(t: &mut Tensors, name: &str, f: impl FnOnce(&mut (String, Vec<usize>, Vec<f32>))) {
    let e = t
        .iter_mut()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no `{name}`"));
    f(e);
}

#[test]
fn every_problem_is_listed_in_one_error() {
    let n = net(small(Flavour::Torchvision, UnitKind::Bottleneck), 1);
    let mut t = export_tensors(&n);
    t.retain(|(name, _, _)| name != "layer2.0.conv2.weight" && name != "layer3.0.bn1.running_var");
    edit(&mut t, "layer1.1.conv1.weight", |e| {
        e.1 = vec![4, 12, 1, 1];
        e.2.truncate(48);
    });
    edit(&mut t, "fc.bias", |e| {
        e.1 = vec![11];
        e.2.push(0.0);
    });
    t.push(("layer1.0.conv1.bias".into(), vec![4], vec![0.0; 4]));
    t.push(("extra.thing".into(), vec![2, 2], vec![0.0; 4]));
    let err = network_from_tensors(&t, None).unwrap_err();
    let shown = err.to_string();
    let (flavour, problems) = mismatch(err);
    assert_eq!(flavour, "torchvision");
    let expected = [
        "missing `layer2.0.conv2.weight`, expected shape [8, 8, 3, 3]",
        "missing `layer3.0.bn1.running_var`, expected shape [16]",
        "wrong shape `layer1.1.conv1.weight`: expected [4, 16, 1, 1], found [4, 12, 1, 1]",
        "wrong shape `fc.bias`: expected [10], found [11]",
        "unexpected `extra.thing` [2, 2]",
        "unexpected `layer1.0.conv1.bias` [4]",
    ];
    assert_eq!(problems, expected, "{shown}");
    println!("{shown}");
}

#[test]
fn slim_missing_names_are_shown_with_their_scope() {
    let n = net(small(Flavour::SlimV2, UnitKind::Bottleneck), 1);
    let mut t = export_tensors(&n);
    let gone = "resnet_v2_26/block2/unit_1/bottleneck_v2/shortcut/biases";
    t.retain(|(name, _, _)| name != gone);
    let (_, problems) = mismatch(network_from_tensors(&t, None).unwrap_err());
    assert_eq!(problems, [format!("missing `{gone}`, expected shape [32]")]);
}

#[test]
fn a_wrong_dtype_names_the_tensor() {
    let n = net(small(Flavour::TimmV2, UnitKind::Basic), 1);
    let mut views: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = export_tensors(&n)
        .into_iter()
        .map(|(name, s, d)| {
            (
                name,
                Dtype::F32,
                s,
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let v = views
        .iter_mut()
        .find(|v| v.0 == "stages.2.blocks.0.norm1.running_mean")
        .unwrap();
    // F16 and BF16 are widened at load (tests/formats.rs); an integer tensor is not a weight.
    v.1 = Dtype::I32;
    let path = write_raw("dtype", &views);
    let res = load_network(&path, &LoadOptions::default());
    std::fs::remove_file(&path).ok();
    match res {
        Err(e @ Error::Dtype { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("stages.2.blocks.0.norm1.running_mean") && s.contains("I32"),
                "{s}"
            );
        }
        other => panic!("expected Error::Dtype, got {other:?}"),
    }
}

#[test]
fn unknown_names_are_an_unknown_flavour() {
    let mut m = HashMap::new();
    m.insert(
        "encoder.weight".to_string(),
        TensorData {
            shape: vec![2],
            data: vec![0.0; 2],
        },
    );
    m.insert(
        "decoder.bias".to_string(),
        TensorData {
            shape: vec![2],
            data: vec![0.0; 2],
        },
    );
    match network_from_tensors(&m, None) {
        Err(Error::UnknownFlavour(why)) => {
            assert!(why.contains("`decoder.bias`, `encoder.weight`"), "{why}")
        }
        other => panic!("expected UnknownFlavour, got {other:?}"),
    }
    let empty: Tensors = Vec::new();
    assert!(matches!(
        network_from_tensors(&empty, None),
        Err(Error::UnknownFlavour(_))
    ));
    // An override cannot conjure units out of nothing either.
    let (_, problems) = mismatch(network_from_tensors(&m, Some(Flavour::Torchvision)).unwrap_err());
    assert!(has(&problems, "found no residual units"), "{problems:#?}");
}

#[test]
fn hostile_shapes_and_indices_never_panic() {
    let n = net(small(Flavour::KerasV1, UnitKind::Bottleneck), 1);
    let base = export_tensors(&n);
    let cases: Vec<Box<Edit>> = vec![
        // Data shorter than the shape claims (only possible in memory).
        Box::new(|t| edit(t, "conv2_block1_2_conv/kernel", |e| e.2.truncate(3))),
        // Wrong rank where the widths are read from.
        Box::new(|t| {
            for e in t.iter_mut().filter(|e| e.0.ends_with("_1_conv/kernel")) {
                e.1 = vec![e.2.len()];
            }
        }),
        Box::new(|t| {
            t.push((
                "conv99999999999_block1_1_conv/kernel".into(),
                vec![1],
                vec![0.0],
            ))
        }),
        Box::new(|t| {
            t.push((
                "conv2_block999999999999999999999_1_conv/kernel".into(),
                vec![1],
                vec![0.0],
            ))
        }),
        Box::new(|t| {
            t.push((
                "conv9_block1_1_conv/kernel".into(),
                vec![1, 1, 32, 4],
                vec![0.0; 128],
            ))
        }),
        Box::new(|t| edit(t, "conv1_conv/kernel", |e| e.1 = vec![7, 7, 3, 0])),
        Box::new(|t| edit(t, "predictions/kernel", |e| e.1 = vec![128, 0])),
        Box::new(|t| t.retain(|e| !e.0.starts_with("predictions"))),
        Box::new(|t| t.retain(|e| !e.0.starts_with("conv3_"))),
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut t = base.clone();
        case(&mut t);
        match network_from_tensors(&t, None) {
            Err(Error::WeightMismatch { problems, .. }) => {
                assert!(!problems.is_empty(), "case {i}")
            }
            other => panic!("case {i}: expected a WeightMismatch, got {other:?}"),
        }
    }
}

/// Real framework exports (`tests/fixtures/<case>.weights.safetensors`, listed in
/// `manifest.json`): each must load, with the arch the manifest records.
#[test]
fn framework_fixtures_load_with_the_manifest_arch() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let manifest = std::fs::read_to_string(dir.join("manifest.json"))
        .expect("tests/fixtures/manifest.json (made by tools/gen_fixtures.py)");
    check_fixtures(&dir, &serde_json::from_str(&manifest).unwrap());
}

fn check_fixtures(dir: &std::path::Path, manifest: &serde_json::Value) {
    let cases = manifest
        .as_array()
        .expect("manifest.json is a list of cases");
    assert!(!cases.is_empty(), "manifest lists no fixtures");
    let mut covered = Vec::new();
    for m in cases {
        let case = m["case"].as_str().expect("every case has a name");
        let file = format!("{case}.weights.safetensors");
        covered.push(file.clone());
        let net = load_network(&dir.join(&file), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let a = &net.arch;
        let list = |key: &str| -> Vec<usize> {
            m[key]
                .as_array()
                .unwrap_or_else(|| panic!("{case}: no `{key}`"))
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect()
        };
        let number = |key: &str| {
            m[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{case}: no `{key}`")) as usize
        };
        let flavour: Flavour = m["flavour"].as_str().unwrap().parse().unwrap();
        assert_eq!(a.flavour, flavour, "{case}");
        let unit = match m["unit"].as_str() {
            Some("basic") => UnitKind::Basic,
            Some("bottleneck") => UnitKind::Bottleneck,
            other => panic!("{case}: unit {other:?}"),
        };
        assert_eq!(a.unit, unit, "{case}");
        assert_eq!(
            a.stages.iter().map(|s| s.units).collect::<Vec<_>>(),
            list("units"),
            "{case}"
        );
        assert_eq!(
            a.stages.iter().map(|s| s.width).collect::<Vec<_>>(),
            list("widths"),
            "{case}"
        );
        assert_eq!(a.stem_width, number("stem_width"), "{case}");
        assert_eq!(a.classes, number("classes"), "{case}");
        assert_eq!(a.in_channels, 3, "{case}");
        // And the loaded weights survive a trip through our own export.
        let back = network_from_tensors(&export_tensors(&net), None).unwrap();
        assert_eq!(back.params, net.params, "{case}");
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".weights.safetensors") {
            assert!(covered.contains(&name), "{name} is not in manifest.json");
        }
    }
}

/// Random weights must keep even a 200-layer net's activations in a sane range, or they are
/// useless for comparing the GPU against the CPU reference.
#[test]
fn random_deep_nets_stay_bounded() {
    use resnet_wgpu::graph::{LowerOptions, lower};
    for f in Flavour::ALL {
        let arch = Arch::new(
            f,
            UnitKind::Bottleneck,
            &[3, 24, 36, 3],
            &[4, 8, 8, 16],
            8,
            10,
        );
        let params = random_params(&arch, 5);
        let graph = lower(&arch, &params, 32, 32, &LowerOptions { features: false }).unwrap();
        let input: Vec<f32> = (0..32 * 32 * 3)
            .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
            .collect();
        let values = resnet_wgpu::cpu::run_graph(&graph, 1, &input);
        // NaN-aware: any non-finite activation fails `abs_err` against zeros.
        let all: Vec<f32> = values.iter().flatten().flatten().copied().collect();
        let biggest =
            common::abs_err(&all, &vec![0.0; all.len()]).unwrap_or_else(|e| panic!("{f}: {e}"));
        let logits = values[graph.logits].as_ref().unwrap();
        assert!(
            biggest.is_finite() && biggest < 100.0,
            "{f}: max |activation| {biggest}"
        );
        assert!(
            logits.iter().any(|&l| l.abs() > 1e-3),
            "{f}: logits {logits:?}"
        );
    }
}
