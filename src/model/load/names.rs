//! Names, as the loader and export use them: each flavour's table from [`Slot`]s to names and
//! layouts lives in its own file under `model/flavour/`; this is the glue (canonical names,
//! ignored names).

use super::skeleton::Slot;
use crate::model::flavour::{AxisOrder, Flavour, strip_output_index};

pub(crate) use crate::model::flavour::detect;

/// The layout of a conv slot's weight.
pub(crate) fn layout(f: Flavour, slot: Slot) -> AxisOrder {
    f.spec().layout(slot)
}

/// `(weight, bias)` names of a conv slot.
pub(crate) fn conv(f: Flavour, slot: Slot) -> (String, String) {
    f.spec().conv(slot)
}

/// `[gamma, beta, mean, var]` names of a BN slot.
pub(crate) fn bn(f: Flavour, slot: Slot) -> [String; 4] {
    f.spec().bn(slot)
}

/// `(stage, unit)`, 0-based, of a canonical name inside a residual unit.
pub(crate) fn unit_index(f: Flavour, name: &str) -> Option<(usize, usize)> {
    f.spec().unit_index(name)
}

/// Maps a file's names to canonical names for `f`.
pub(crate) struct Canonicalizer {
    flavour: Flavour,
    /// The scope every name must sit under (slim; `""` for none).
    scope: String,
}

impl Canonicalizer {
    pub(crate) fn new(flavour: Flavour, names: &[&str]) -> Canonicalizer {
        Canonicalizer {
            flavour,
            scope: flavour.spec().scope(names),
        }
    }

    /// The canonical name, or `None` for a name that cannot belong to this flavour's network
    /// (outside the slim scope).
    pub(crate) fn canonical(&self, name: &str) -> Option<String> {
        self.flavour.spec().canonical(&self.scope, name)
    }

    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }
}

/// Names that say nothing about the weights and are skipped silently (torch's BN step
/// counters, TF's global step).
pub(crate) fn is_ignored(name: &str) -> bool {
    let name = strip_output_index(name);
    name.ends_with("num_batches_tracked") || name == "global_step"
}
