//! The lowered graphs of every preset against the figures the frameworks themselves report
//! (`docs/models.md`, "Reference figures": parameters, BN statistics and multiply-adds at
//! 224x224). The multiply-adds pin down every stride placement; the parameter counts every bias
//! and BN.

use resnet_wgpu::graph::{LowerOptions, Op, lower};
use resnet_wgpu::model::Arch;
use resnet_wgpu::model::params::{BatchNorm, ConvWeights, Params};
use resnet_wgpu::model::random::random_params;

/// (preset, params, BN stats, MACs @224 in units of 1e6, rounded as `docs/models.md` prints them).
const TABLE: &[(&str, u64, u64, u64)] = &[
    ("resnet18", 11_689_512, 9_600, 1_814),
    ("resnet34", 21_797_672, 17_024, 3_664),
    ("resnet50", 25_557_032, 53_120, 4_089),
    ("resnet101", 44_549_160, 105_344, 7_801),
    ("resnet152", 60_192_808, 151_424, 11_514),
    ("resnetv2_18", 11_687_720, 7_808, 1_814),
    ("resnetv2_34", 21_795_880, 15_232, 3_664),
    ("resnetv2_50", 25_549_352, 45_440, 4_089),
    ("resnetv2_101", 44_541_480, 97_664, 7_801),
    ("resnetv2_152", 60_185_128, 143_744, 11_514),
    ("ResNet50", 25_583_592, 53_120, 3_858),
    ("ResNet101", 44_601_832, 105_344, 7_570),
    ("ResNet152", 60_268_520, 151_424, 11_282),
    ("ResNet50V2", 25_568_360, 45_440, 3_482),
    ("ResNet101V2", 44_577_896, 97_664, 7_194),
    ("ResNet152V2", 60_236_904, 143_744, 10_907),
    ("resnet_v2_50", 25_570_409, 45_440, 3_482),
    ("resnet_v2_101", 44_579_945, 97_664, 7_194),
    ("resnet_v2_152", 60_238_953, 143_744, 10_907),
    ("resnet_v2_200", 64_728_169, 168_320, 14_401),
];

/// Slim checkpoints are evaluated at 299.
const SLIM_299: &[(&str, u64)] = &[
    ("resnet_v2_50", 6_536),
    ("resnet_v2_101", 13_374),
    ("resnet_v2_152", 20_211),
    ("resnet_v2_200", 26_646),
];

fn conv_params(c: &ConvWeights) -> u64 {
    (c.weight.len() + c.bias.as_ref().map_or(0, Vec::len)) as u64
}

/// (trainable, running statistics) of a batch norm.
fn bn_params(bn: Option<&BatchNorm>) -> (u64, u64) {
    bn.map_or((0, 0), |b| {
        (2 * b.channels() as u64, 2 * b.channels() as u64)
    })
}

fn count(p: &Params) -> (u64, u64) {
    let mut params = conv_params(&p.stem) + conv_params(&p.classifier);
    let mut stats = 0;
    let mut add_bn = |bn: Option<&BatchNorm>| {
        let (t, s) = bn_params(bn);
        params += t;
        stats += s;
    };
    add_bn(p.stem_bn.as_ref());
    add_bn(p.post_norm.as_ref());
    let mut convs = 0;
    for u in p.stages.iter().flatten() {
        add_bn(u.preact.as_ref());
        add_bn(Some(&u.bn1));
        add_bn(u.bn2.as_ref());
        add_bn(u.bn3.as_ref());
        if let Some((_, bn)) = &u.shortcut {
            add_bn(bn.as_ref());
        }
        convs += conv_params(&u.conv1)
            + conv_params(&u.conv2)
            + u.conv3.as_ref().map_or(0, conv_params)
            + u.shortcut.as_ref().map_or(0, |(c, _)| conv_params(c));
    }
    (params + convs, stats)
}

fn mmacs(arch: &Arch, params: &Params, side: usize) -> u64 {
    let g = lower(arch, params, side, side, &LowerOptions::default()).unwrap();
    (g.macs_per_image() as f64 / 1e6).round() as u64
}

#[test]
fn presets_match_the_frameworks_parameter_and_mac_counts() {
    for &(name, want_params, want_stats, want_mmacs) in TABLE {
        let arch = Arch::preset(name).unwrap();
        let params = random_params(&arch, 1);
        assert_eq!(
            count(&params),
            (want_params, want_stats),
            "{name}: params, BN stats"
        );
        // docs/models.md prints GMACs with 3 decimals: compare at that precision.
        let got = mmacs(&arch, &params, 224);
        assert!(
            got.abs_diff(want_mmacs) <= 1,
            "{name}: {got} MMACs, spec {want_mmacs}"
        );
        if let Some(&(_, at299)) = SLIM_299.iter().find(|(n, _)| *n == name) {
            let got = mmacs(&arch, &params, 299);
            assert!(
                got.abs_diff(at299) <= 1,
                "{name}@299: {got} MMACs, spec {at299}"
            );
        }
    }
}

#[test]
fn v2_projection_shares_one_read_with_the_reduce_conv_where_strides_agree() {
    let names = |preset: &str| -> Vec<String> {
        let arch = Arch::preset(preset).unwrap();
        let p = random_params(&arch, 2);
        let g = lower(&arch, &p, 64, 64, &LowerOptions::default()).unwrap();
        g.ops.iter().map(|o| o.name().to_string()).collect()
    };
    // slim: the projection is in unit 1 (stride 1), always merged.
    let slim = names("resnet_v2_50");
    assert_eq!(
        slim.iter()
            .filter(|n| n.ends_with("conv1+shortcut"))
            .count(),
        4
    );
    assert!(!slim.iter().any(|n| n.ends_with("/shortcut")));
    // timm: stages 2-4 stride the projection but not the 1x1 reduce: separate convs there.
    let timm = names("resnetv2_50");
    assert_eq!(
        timm.iter()
            .filter(|n| n.ends_with("conv1+shortcut"))
            .count(),
        1
    );
    assert_eq!(timm.iter().filter(|n| n.ends_with("/shortcut")).count(), 3);
    // Keras v1 strides both 1x1s of the first unit: merged in every stage.
    let keras = names("ResNet50");
    assert_eq!(
        keras
            .iter()
            .filter(|n| n.ends_with("conv1+shortcut"))
            .count(),
        4
    );
}

#[test]
fn every_conv_folds_its_batch_norm_and_v2_preacts_ride_on_the_consumers() {
    let arch = Arch::preset("resnet_v2_50").unwrap();
    let p = random_params(&arch, 3);
    let g = lower(&arch, &p, 64, 64, &LowerOptions::default()).unwrap();
    let convs: Vec<_> = g
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::Conv(c) => Some(c),
            _ => None,
        })
        .collect();
    // 1 stem + 16 units x 3 convs (projections merged) + classifier; no standalone BN op.
    assert_eq!(convs.len(), 1 + 16 * 3 + 1);
    assert!(!g.ops.iter().any(|o| matches!(o, Op::BnRelu(_))));
    // Every unit's first conv carries the preact; conv3 carries the residual.
    assert_eq!(convs.iter().filter(|c| c.in_act.is_some()).count(), 16);
    assert_eq!(convs.iter().filter(|c| c.residual.is_some()).count(), 16);
    // slim's strided identity: x[::2, ::2] in the last unit of stages 1-3.
    assert_eq!(
        convs
            .iter()
            .filter(|c| c.residual.as_ref().is_some_and(|r| r.stride == 2))
            .count(),
        3
    );
    // The post-norm is fused into the pool unless features are asked for.
    assert!(
        g.ops
            .iter()
            .any(|o| matches!(o, Op::GlobalAvgPool(gp) if gp.in_act.is_some()))
    );
    let gf = lower(&arch, &p, 64, 64, &LowerOptions { features: true }).unwrap();
    assert!(gf.ops.iter().any(|o| matches!(o, Op::BnRelu(_))));
    assert_eq!(gf.features.len(), 8); // stem_conv, stem_pool, stage1-4, post_norm, pooled
}

#[test]
fn constants_len_matches_the_constants() {
    let arch = Arch::preset("resnet_v2_50").unwrap();
    let p = random_params(&arch, 4);
    let g = lower(&arch, &p, 32, 32, &LowerOptions { features: true }).unwrap();
    for op in &g.ops {
        assert_eq!(op.constants_len(), op.constants().len(), "{}", op.name());
    }
}

#[test]
fn inputs_below_32_pixels_are_rejected() {
    let arch = Arch::preset("resnet18").unwrap();
    let p = random_params(&arch, 5);
    let e = lower(&arch, &p, 31, 64, &LowerOptions::default()).unwrap_err();
    assert!(e.to_string().contains("below the minimum"), "{e}");
}

/// Batch-norm statistics that fold into NaN or infinity (a negative running variance, a gamma
/// that overflows the folded weight) are refused with the op's name, never passed on to a
/// ReLU that would hide them.
#[test]
fn statistics_that_fold_to_non_finite_values_are_refused() {
    use resnet_wgpu::model::arch::UnitKind;
    use resnet_wgpu::model::{Flavour, Network};
    let arch = Arch::new(
        Flavour::Torchvision,
        UnitKind::Basic,
        &[1, 1],
        &[8, 16],
        8,
        5,
    );
    let base = Network {
        params: random_params(&arch, 9),
        arch,
    };
    // The error, not the (huge) graph, on failure.
    let lowered = |edit: &dyn Fn(&mut Params)| {
        let mut p = base.params.clone();
        edit(&mut p);
        lower(&base.arch, &p, 32, 32, &LowerOptions::default()).map(|_| ())
    };
    assert!(lowered(&|_| {}).is_ok());
    let e = lowered(&|p| p.stages[1][0].bn1.var[3] = -0.5).unwrap_err();
    assert!(
        e.to_string().contains("stage2/unit1/conv1") && e.to_string().contains("negative"),
        "{e}"
    );
    let e = lowered(&|p| {
        let bn = p.stem_bn.as_mut().unwrap();
        bn.gamma[0] = f32::MAX;
        bn.var[0] = 0.0;
    })
    .unwrap_err();
    assert!(e.to_string().contains("stem/conv"), "{e}");
}

/// A pre-activation bottleneck whose graph strides the 1x1 reduce conv (the ONNX loader reads
/// the stride's place off the graph) is lowered with the stride there, not silently moved to
/// the 3x3: the same multiply-adds as that graph, and the 3x3 at stride 1.
#[test]
fn a_v2_bottleneck_strides_the_conv_its_rules_name() {
    use resnet_wgpu::model::arch::StrideConv;
    let mut arch = Arch::preset("resnetv2_50").unwrap();
    let p = random_params(&arch, 4);
    let strides = |arch: &Arch| -> Vec<(String, usize)> {
        let g = lower(arch, &p, 64, 64, &LowerOptions::default()).unwrap();
        g.ops
            .iter()
            .filter_map(|o| match o {
                Op::Conv(c) if c.name.starts_with("stage2/unit1/") => {
                    Some((c.name.clone(), c.stride))
                }
                _ => None,
            })
            .collect()
    };
    let spatial = strides(&arch);
    arch.rules.stride_conv = StrideConv::Reduce1x1;
    let reduce = strides(&arch);
    let stride_of = |convs: &[(String, usize)], suffix: &str| {
        convs
            .iter()
            .find(|(n, _)| n.contains(suffix))
            .unwrap_or_else(|| panic!("no {suffix} in {convs:?}"))
            .1
    };
    assert_eq!(
        (stride_of(&spatial, "conv1"), stride_of(&spatial, "conv2")),
        (1, 2),
        "{spatial:?}"
    );
    assert_eq!(
        (stride_of(&reduce, "conv1"), stride_of(&reduce, "conv2")),
        (2, 1),
        "{reduce:?}"
    );
}
