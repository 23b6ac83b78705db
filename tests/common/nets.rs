//! The grid of small networks and device profiles that `tests/launches.rs` and `tests/emit.rs`
//! plan: every flavour with basic and bottleneck units, a wide net for split K, a v2 net with
//! its feature maps kept, and the GPU and software kernel profiles with their variations.

use resnet_wgpu::graph::{Graph, LowerOptions, lower};
use resnet_wgpu::model::arch::UnitKind;
use resnet_wgpu::model::random::random_params;
use resnet_wgpu::model::{Arch, Flavour};
use resnet_wgpu::plan::{DeviceProfile, WinogradPolicy};
use resnet_wgpu::winograd::Tile;

/// A small network of `flavour` with `unit`s: 2, 1, 2, 2 units, narrow stages.
pub fn small(flavour: Flavour, unit: UnitKind) -> Arch {
    let widths: &[usize] = match unit {
        UnitKind::Basic => &[8, 12, 16, 20],
        UnitKind::Bottleneck => &[4, 8, 12, 16],
    };
    Arch::new(flavour, unit, &[2, 1, 2, 2], widths, 12, 7)
}

/// `arch` with seeded random weights, lowered at `side` x `side`.
pub fn lower_arch(arch: &Arch, side: usize, features: bool) -> Graph {
    let params = random_params(arch, 5);
    lower(arch, &params, side, side, &LowerOptions { features }).unwrap()
}

/// [`small`] lowered at `side`.
pub fn graph(flavour: Flavour, unit: UnitKind, side: usize) -> Graph {
    lower_arch(&small(flavour, unit), side, false)
}

/// A torchvision basic network whose last 3x3 convs have K = 1152 (split K on GPUs, on maps
/// of 3x3 at 96).
pub fn wide(side: usize) -> Graph {
    let arch = Arch::new(
        Flavour::Torchvision,
        UnitKind::Basic,
        &[1, 1, 1, 1],
        &[16, 32, 64, 128],
        16,
        7,
    );
    lower_arch(&arch, side, false)
}

/// Every flavour with both units at 96x96 (24x24 maps after the stem: Winograd F(4,3)), the
/// [`wide`] net, and a v2 net with its feature maps kept (the post-norm is a bn_relu op).
pub fn networks() -> Vec<(String, Graph)> {
    let mut out = Vec::new();
    for flavour in Flavour::ALL {
        for unit in [UnitKind::Basic, UnitKind::Bottleneck] {
            out.push((format!("{flavour} {unit:?}"), graph(flavour, unit, 96)));
        }
    }
    out.push(("wide torchvision basic".into(), wide(96)));
    out.push((
        "slim v2 with features".into(),
        lower_arch(&small(Flavour::SlimV2, UnitKind::Bottleneck), 96, true),
    ));
    out
}

/// The kernel profiles: a GPU's (Winograd by rule, off, F(4,3) forced) and a software
/// adapter's (textures and subgroups, without textures, without either, F(4,3) forced).
pub fn profiles() -> Vec<(&'static str, DeviceProfile)> {
    let (gpu, software) = (DeviceProfile::gpu(), DeviceProfile::software());
    let f4 = WinogradPolicy::Force(Tile::F4);
    vec![
        ("gpu", gpu),
        (
            "gpu, no Winograd",
            DeviceProfile {
                winograd: WinogradPolicy::Off,
                ..gpu
            },
        ),
        (
            "gpu, F(4,3) everywhere",
            DeviceProfile {
                winograd: f4,
                ..gpu
            },
        ),
        ("software", software),
        (
            "software, no textures",
            DeviceProfile {
                textures: false,
                ..software
            },
        ),
        (
            "software, no textures or subgroups",
            DeviceProfile {
                textures: false,
                subgroups: false,
                ..software
            },
        ),
        (
            "software, F(4,3) everywhere",
            DeviceProfile {
                winograd: f4,
                ..software
            },
        ),
    ]
}
