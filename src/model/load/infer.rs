//! Reading the architecture off the checkpoint itself: stage and unit counts from the unit
//! indices in the names, channel counts from the shapes. Presets are never consulted, so a
//! ResNet-26 or a half-width net loads like any other.
//!
//! The one thing names cannot tell apart: a file that lost the *last* units of a stage looks
//! exactly like a shallower net, and loads as one.

use super::names;
use super::skeleton::{Part, Slot, last_conv};
use crate::model::arch::{Arch, Family, Flavour, UnitKind};
use std::collections::{BTreeMap, BTreeSet};

/// What inference may look at: canonical names and their shapes.
pub(crate) trait Shapes {
    fn names(&self) -> Vec<&str>;
    fn shape(&self, canonical: &str) -> Option<&[usize]>;
}

struct Probe<'a, S: Shapes> {
    f: Flavour,
    shapes: &'a S,
}

impl<S: Shapes> Probe<'_, S> {
    fn conv_dims(&self, slot: Slot) -> Option<(usize, usize)> {
        let (w, _) = names::conv(self.f, slot);
        names::layout(self.f, slot).cin_cout(self.shapes.shape(&w)?)
    }
    fn cin(&self, slot: Slot) -> Option<usize> {
        self.conv_dims(slot).map(|d| d.0)
    }
    fn cout(&self, slot: Slot) -> Option<usize> {
        self.conv_dims(slot).map(|d| d.1)
    }
    /// Channels of a BN slot, from its gamma.
    fn bn(&self, slot: Slot) -> Option<usize> {
        match self.shapes.shape(&names::bn(self.f, slot)[0])? {
            &[c] => Some(c),
            _ => None,
        }
    }
    fn has(&self, slot: Slot) -> bool {
        self.shapes.shape(&names::conv(self.f, slot).0).is_some()
    }
}

/// Infers the architecture, or says why it cannot be inferred. Shapes are only *read* here;
/// whether every tensor agrees with the result is the loader's check.
pub(crate) fn infer_arch(f: Flavour, shapes: &impl Shapes) -> Result<Arch, Vec<String>> {
    let p = Probe { f, shapes };
    let all = shapes.names();
    // An index beyond the tensor count cannot be a real unit (each has several tensors); such
    // names stay unexpected instead of allocating a giant stage table.
    let cap = all.len();
    let mut units: Vec<usize> = Vec::new();
    let mut seen = BTreeSet::new();
    // One name per stage, to point at the tensors that imply a stage when it has a gap before it.
    let mut example: BTreeMap<usize, &str> = BTreeMap::new();
    for n in &all {
        if let Some((s, u)) = names::unit_index(f, n).filter(|&(s, u)| s < cap && u < cap) {
            if units.len() <= s {
                units.resize(s + 1, 0);
            }
            units[s] = units[s].max(u + 1);
            seen.insert((s, u));
            let e = example.entry(s).or_insert(n);
            *e = (*e).min(n);
        }
    }
    let mut problems = Vec::new();
    if units.is_empty() {
        let example = names::conv(f, Slot::unit(0, 0, Part::Conv(1))).0;
        return Err(vec![format!(
            "found no residual units: no tensor is named like `{example}`"
        )]);
    }
    for (s, &n) in units.iter().enumerate() {
        if n == 0 {
            let later = example
                .range(s..)
                .next()
                .map(|(t, name)| format!(", but stage {} does (`{name}`)", t + 1))
                .unwrap_or_default();
            problems.push(format!(
                "stage {} has no units (expected names like `{}`){later}",
                s + 1,
                names::conv(f, Slot::unit(s, 0, Part::Conv(1))).0,
            ));
        }
    }

    let kind = if seen
        .iter()
        .any(|&(s, u)| p.has(Slot::unit(s, u, Part::Conv(3))))
    {
        UnitKind::Bottleneck
    } else {
        UnitKind::Basic
    };
    let last = last_conv(kind);
    let v1 = f.family() == Family::PostActivation;
    let n_stages = units.len();
    let unit_slots = |s: usize, part: Part| (0..units[s]).map(move |u| Slot::unit(s, u, part));

    let in_channels = p.cin(Slot::Stem).unwrap_or(3);
    let stem_width = p
        .cout(Slot::Stem)
        .or_else(|| p.bn(Slot::StemBn))
        .or_else(|| p.cin(Slot::unit(0, 0, Part::Conv(1))))
        .or_else(|| p.bn(Slot::unit(0, 0, Part::Preact)))
        .or_else(|| p.cin(Slot::unit(0, 0, Part::Shortcut)));
    let mut widths = Vec::with_capacity(n_stages);
    let mut outs = Vec::with_capacity(n_stages);
    for (s, &n_units) in units.iter().enumerate() {
        let width = unit_slots(s, Part::Conv(1))
            .find_map(|slot| p.cout(slot))
            .or_else(|| unit_slots(s, Part::Bn(1)).find_map(|slot| p.bn(slot)));
        let mut out = unit_slots(s, Part::Conv(last))
            .find_map(|slot| p.cout(slot))
            .or_else(|| unit_slots(s, Part::Shortcut).find_map(|slot| p.cout(slot)))
            .or_else(|| {
                v1.then(|| unit_slots(s, Part::Bn(last)).find_map(|slot| p.bn(slot)))
                    .flatten()
            });
        if s + 1 < n_stages {
            out = out
                .or_else(|| p.cin(Slot::unit(s + 1, 0, Part::Conv(1))))
                .or_else(|| p.bn(Slot::unit(s + 1, 0, Part::Preact)));
        } else {
            out = out
                .or_else(|| p.bn(Slot::PostNorm))
                .or_else(|| p.cin(Slot::Classifier));
        }
        let conv_name = |k| names::conv(f, Slot::unit(s, 0, Part::Conv(k))).0;
        // An empty stage is reported above; its channel counts are moot.
        if width.is_none() && n_units > 0 {
            problems.push(format!(
                "cannot tell the width of stage {}: no unit has a usable `{}`-like tensor",
                s + 1,
                conv_name(1)
            ));
        }
        if out.is_none() && n_units > 0 {
            problems.push(format!(
                "cannot tell the output channels of stage {}: no unit has a usable `{}`-like tensor",
                s + 1,
                conv_name(last)
            ));
        }
        widths.push(width.unwrap_or(0));
        outs.push(out.unwrap_or(0));
    }
    // Without any classifier tensor the flavour's ImageNet count stands in, so that the
    // classifier shows up as missing (with a shape) rather than blocking the whole report.
    let classes = p.cout(Slot::Classifier).or_else(|| {
        match shapes.shape(&names::conv(f, Slot::Classifier).1) {
            Some(&[c]) => Some(c),
            Some(_) => None,
            None => Some(f.default_classes()),
        }
    });
    if classes.is_none() {
        let (w, b) = names::conv(f, Slot::Classifier);
        problems.push(format!(
            "cannot tell the class count: neither `{w}` nor `{b}` has a usable shape"
        ));
    }
    if stem_width.is_none() {
        problems.push(format!(
            "cannot tell the stem width: no usable `{}`",
            names::conv(f, Slot::Stem).0
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let (stem_width, classes) = (stem_width.unwrap_or(0), classes.unwrap_or(0));
    let zero = |what: &str, v: usize| (v == 0).then(|| format!("{what} is 0"));
    problems.extend(zero("the input channel count", in_channels));
    problems.extend(zero("the stem width", stem_width));
    problems.extend(zero("the class count", classes));
    for s in 0..n_stages {
        problems.extend(zero(&format!("the width of stage {}", s + 1), widths[s]));
        problems.extend(zero(
            &format!("the output channel count of stage {}", s + 1),
            outs[s],
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut arch = Arch::new(f, kind, &units, &widths, stem_width, classes);
    arch.in_channels = in_channels;
    for (stage, out) in arch.stages.iter_mut().zip(outs) {
        stage.out = out;
    }
    Ok(arch)
}
