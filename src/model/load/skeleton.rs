//! The one place that says which parameters a given [`Arch`] has. Loading, random generation
//! and export all walk this structure, so a checkpoint can never be read with a different
//! idea of "what a unit contains" than the one it was written or generated with.

use crate::model::arch::{Arch, Family, UnitKind};
use crate::model::params::{BatchNorm, ConvWeights, Params, UnitParams};

/// A parameter group's place in the network, independent of any flavour's naming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Slot {
    Stem,
    /// v1 only.
    StemBn,
    Unit {
        stage: usize,
        unit: usize,
        part: Part,
    },
    /// v2 only.
    PostNorm,
    Classifier,
}

/// A parameter group inside a residual unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    Preact,
    /// `conv1`..`conv3`.
    Conv(usize),
    /// The BN right after `Conv(k)`.
    Bn(usize),
    Shortcut,
    ShortcutBn,
}

impl Slot {
    pub(crate) fn unit(stage: usize, unit: usize, part: Part) -> Slot {
        Slot::Unit { stage, unit, part }
    }
}

/// What a conv slot must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvSpec {
    pub kh: usize,
    pub kw: usize,
    pub cin: usize,
    pub cout: usize,
    pub bias: bool,
    /// The last conv of a residual branch: random weights scale it down so that deep nets stay
    /// bounded.
    pub branch_end: bool,
}

/// Produces parameter groups on demand, in network order (stem, units, head).
pub(crate) trait Factory {
    fn conv(&mut self, slot: Slot, spec: &ConvSpec) -> ConvWeights;
    /// `branch_end`: the BN right after a residual branch's last conv (v1 only).
    fn bn(&mut self, slot: Slot, channels: usize, branch_end: bool) -> BatchNorm;
}

/// Index of the last conv of a unit (3 for bottlenecks, 2 for basic units).
pub(crate) fn last_conv(unit: UnitKind) -> usize {
    match unit {
        UnitKind::Basic => 2,
        UnitKind::Bottleneck => 3,
    }
}

/// Channels seen by the head: the last stage's output (the stem's for a stageless net).
pub(crate) fn features(arch: &Arch) -> usize {
    arch.stages.last().map_or(arch.stem_width, |s| s.out)
}

/// Asks `f` for every parameter group `arch` has, in network order, and assembles them.
pub(crate) fn build_params(arch: &Arch, f: &mut impl Factory) -> Params {
    let b = arch.rules.biases;
    let v1 = arch.family() == Family::PostActivation;
    let conv = |k: usize, cin: usize, cout: usize, bias: bool, branch_end: bool| ConvSpec {
        kh: k,
        kw: k,
        cin,
        cout,
        bias,
        branch_end,
    };
    let stem = f.conv(
        Slot::Stem,
        &conv(7, arch.in_channels, arch.stem_width, b.stem, false),
    );
    let stem_bn = arch
        .rules
        .stem_norm
        .then(|| f.bn(Slot::StemBn, arch.stem_width, false));
    let mut stages = Vec::with_capacity(arch.stages.len());
    for (s, stage) in arch.stages.iter().enumerate() {
        let mut units = Vec::with_capacity(stage.units);
        for u in 0..stage.units {
            let slot = |part| Slot::unit(s, u, part);
            let cin = arch.unit_in_channels(s, u);
            let (width, out) = (stage.width, stage.out);
            let preact = (!v1).then(|| f.bn(slot(Part::Preact), cin, false));
            let unit = match arch.unit {
                UnitKind::Bottleneck => {
                    let conv1 = f.conv(slot(Part::Conv(1)), &conv(1, cin, width, b.inner, false));
                    let bn1 = f.bn(slot(Part::Bn(1)), width, false);
                    let conv2 = f.conv(slot(Part::Conv(2)), &conv(3, width, width, b.inner, false));
                    let bn2 = Some(f.bn(slot(Part::Bn(2)), width, false));
                    let conv3 =
                        Some(f.conv(slot(Part::Conv(3)), &conv(1, width, out, b.last, true)));
                    let bn3 = v1.then(|| f.bn(slot(Part::Bn(3)), out, true));
                    (conv1, bn1, conv2, bn2, conv3, bn3)
                }
                UnitKind::Basic => {
                    let conv1 = f.conv(slot(Part::Conv(1)), &conv(3, cin, width, b.inner, false));
                    let bn1 = f.bn(slot(Part::Bn(1)), width, false);
                    let conv2 = f.conv(slot(Part::Conv(2)), &conv(3, width, out, b.last, true));
                    let bn2 = v1.then(|| f.bn(slot(Part::Bn(2)), out, true));
                    (conv1, bn1, conv2, bn2, None, None)
                }
            };
            let shortcut = arch.has_projection(s, u).then(|| {
                let c = f.conv(slot(Part::Shortcut), &conv(1, cin, out, b.shortcut, false));
                (c, v1.then(|| f.bn(slot(Part::ShortcutBn), out, false)))
            });
            let (conv1, bn1, conv2, bn2, conv3, bn3) = unit;
            units.push(UnitParams {
                preact,
                conv1,
                bn1,
                conv2,
                bn2,
                conv3,
                bn3,
                shortcut,
            });
        }
        stages.push(units);
    }
    let feat = features(arch);
    let post_norm = (!v1).then(|| f.bn(Slot::PostNorm, feat, false));
    let classifier = f.conv(Slot::Classifier, &conv(1, feat, arch.classes, true, false));
    Params {
        input_norm: None,
        stem,
        stem_bn,
        stages,
        post_norm,
        classifier,
    }
}

/// A parameter group as found in a [`Params`].
pub(crate) enum Item<'a> {
    Conv(&'a ConvWeights),
    Bn(&'a BatchNorm),
}

/// Visits every group `params` actually holds, in the order [`build_params`] creates them.
/// Walks the params rather than an arch so that export writes exactly what is there.
pub(crate) fn visit_params(params: &Params, mut visit: impl FnMut(Slot, Item<'_>)) {
    visit(Slot::Stem, Item::Conv(&params.stem));
    if let Some(bn) = &params.stem_bn {
        visit(Slot::StemBn, Item::Bn(bn));
    }
    for (s, units) in params.stages.iter().enumerate() {
        for (u, p) in units.iter().enumerate() {
            let slot = |part| Slot::unit(s, u, part);
            if let Some(bn) = &p.preact {
                visit(slot(Part::Preact), Item::Bn(bn));
            }
            visit(slot(Part::Conv(1)), Item::Conv(&p.conv1));
            visit(slot(Part::Bn(1)), Item::Bn(&p.bn1));
            visit(slot(Part::Conv(2)), Item::Conv(&p.conv2));
            if let Some(bn) = &p.bn2 {
                visit(slot(Part::Bn(2)), Item::Bn(bn));
            }
            if let Some(c) = &p.conv3 {
                visit(slot(Part::Conv(3)), Item::Conv(c));
            }
            if let Some(bn) = &p.bn3 {
                visit(slot(Part::Bn(3)), Item::Bn(bn));
            }
            if let Some((c, bn)) = &p.shortcut {
                visit(slot(Part::Shortcut), Item::Conv(c));
                if let Some(bn) = bn {
                    visit(slot(Part::ShortcutBn), Item::Bn(bn));
                }
            }
        }
    }
    if let Some(bn) = &params.post_norm {
        visit(Slot::PostNorm, Item::Bn(bn));
    }
    visit(Slot::Classifier, Item::Conv(&params.classifier));
}
