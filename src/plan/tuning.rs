//! Tuned kernel choices: per distinct conv shape, which GEMM kernel (variant, shared tile,
//! split-K slices) was fastest on one device, as measured by `resnet tune`. Plain data: the
//! plan consults a [`TuningTable`] before its heuristic and records where each choice came
//! from ([`Origin`]); timing lives in `crate::tune`, files on disk here (a versioned JSON
//! document whose [`DeviceKey`] must match the adapter it is used on).
//!
//! Winograd or direct stays the heuristic's decision (a key names it), so a tuned choice never
//! changes a layer's arithmetic, only which kernel does it: tuned plans give the same answers.

pub use super::kernel::Origin;
use super::kernel::{
    ConvAlgo, ConvPlan, ConvVariant, DeviceProfile, SHARED_TILES, SPLIT_K_MIN_K, SharedTile,
};
use crate::error::Error;
use crate::graph::{ConvOp, TensorInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever kernels, tiles or keys change meaning: a file of another format (or of
/// another engine version) is stale, not trusted.
pub const FORMAT: u32 = 1;

/// One tuned choice: the kernel of a conv's GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Choice {
    /// `shared`, `register`, `texture` or `subgroup`.
    #[serde(with = "variant_name")]
    pub variant: ConvVariant,
    /// Index into [`SHARED_TILES`] (shared variant only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<usize>,
    /// K slices (direct convs only; 1: no split).
    #[serde(default = "one")]
    pub splits: u32,
}

fn one() -> u32 {
    1
}

mod variant_name {
    use super::ConvVariant;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    pub fn serialize<S: Serializer>(v: &ConvVariant, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ConvVariant, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

impl Choice {
    /// The choice a conv plan embodies (what the heuristic picked, as a tuning entry).
    pub fn of(plan: &ConvPlan) -> Choice {
        let g = &plan.gemm;
        let tile = (g.variant == ConvVariant::Shared)
            .then(|| {
                SHARED_TILES.iter().position(|t| {
                    (t.bm(), t.bn4(), t.tm, t.tn4, t.bk)
                        == (g.tile_m, g.tile_n4, g.rows, g.cols4, g.k_step)
                })
            })
            .flatten();
        Choice {
            variant: g.variant,
            tile,
            splits: g.splits.max(1),
        }
    }

    /// The shared variant's tile, if the choice names one.
    pub fn shared_tile(self) -> Option<SharedTile> {
        self.tile.and_then(|i| SHARED_TILES.get(i).copied())
    }

    /// Short text for reports: `shared 128x64`, `texture`, `shared 32x64 split-K 8`.
    pub fn describe(self) -> String {
        let mut s = self.variant.name().to_string();
        if let Some(t) = self.shared_tile() {
            s += &format!(" {}x{}", t.bm(), 4 * t.bn4());
        }
        if self.splits > 1 {
            s += &format!(" split-K {}", self.splits);
        }
        s
    }

    /// Whether `device` can run this choice for a conv whose heuristic algorithm is `algo`:
    /// entries that fail are ignored (a table from a richer device, or a hand-edited one).
    pub fn runs_on(self, device: &DeviceProfile, algo: ConvAlgo, k: usize) -> bool {
        let variant_ok = match self.variant {
            ConvVariant::Texture => device.textures,
            ConvVariant::Subgroup => device.subgroups,
            ConvVariant::Shared => self.tile.is_none_or(|i| i < SHARED_TILES.len()),
            ConvVariant::Register => true,
        };
        let splits_ok = self.splits == 1
            || (self.variant == ConvVariant::Shared
                && !matches!(algo, ConvAlgo::Winograd(_))
                && k >= SPLIT_K_MIN_K
                && self.splits <= super::kernel::SPLIT_K_MAX);
        variant_ok && splits_ok && self.splits >= 1
    }
}

/// The shape key of a conv at `batch` images: kernel, stride, channels, input map, and the
/// heuristic's algorithm family (direct or a Winograd tile; split K counts as direct, since
/// whether to split is part of the choice). Input activation and epilogue do not change which
/// kernel is fastest enough to key on them.
pub fn key(op: &ConvOp, tensors: &[TensorInfo], batch: usize, algo: ConvAlgo) -> String {
    let i = &tensors[op.input];
    let family = match algo {
        ConvAlgo::Winograd(t) => t.name().to_string(),
        ConvAlgo::Direct | ConvAlgo::SplitK(_) => "direct".into(),
    };
    format!(
        "{}x{}/{} {}->{} {}x{} b{batch} {family}",
        op.kh, op.kw, op.stride, op.cin, op.cout, i.h, i.w
    )
}

/// What a tuning file is valid for: the adapter, its driver and backend, the profile planned
/// for, the precision, and the engine that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKey {
    /// The adapter's name.
    pub adapter: String,
    /// Its driver and driver version.
    pub driver: String,
    /// Its wgpu backend.
    pub backend: String,
    /// `gpu` or `software`: the kernel mix the choices are for.
    pub profile: String,
    /// `f32` or `f16` storage.
    pub precision: String,
    /// The crate version that measured them ([`FORMAT`] is checked separately).
    pub engine: String,
}

impl DeviceKey {
    /// File name stem: a stable FNV-1a hash of the key (the file itself holds the key, which
    /// is compared on load, so a collision is caught as a mismatch).
    pub fn file_stem(&self) -> String {
        let text = serde_json::to_string(self).expect("key serializes");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        format!("tuning-{h:016x}")
    }
}

/// Tuned choices by [`key`], for one [`DeviceKey`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningTable {
    /// Choices by shape key.
    pub entries: BTreeMap<String, Choice>,
}

impl TuningTable {
    /// The choice for shape `key`.
    pub fn get(&self, key: &str) -> Option<Choice> {
        self.entries.get(key).copied()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A tuning file: format, device key, entries.
#[derive(Debug, Serialize, Deserialize)]
struct TuningFile {
    format: u32,
    device: DeviceKey,
    entries: BTreeMap<String, Choice>,
}

/// Serializes `table` for `device` (pretty JSON, one entry a line).
pub fn to_json(device: &DeviceKey, table: &TuningTable) -> String {
    let file = TuningFile {
        format: FORMAT,
        device: device.clone(),
        entries: table.entries.clone(),
    };
    serde_json::to_string_pretty(&file).expect("tuning table serializes")
}

/// Parses a tuning file and checks that it was written for `device` by this engine's format;
/// `what` names the file in errors. Every mismatch is an error that says what to do (the
/// callers turn it into a warning and plan with the heuristic).
pub fn from_json(text: &str, device: &DeviceKey, what: &str) -> Result<TuningTable, Error> {
    let retune = "run `resnet tune` again to replace it";
    let file: TuningFile = serde_json::from_str(text)
        .map_err(|e| Error::Tuning(format!("tuning file {what} is corrupt ({e}); {retune}")))?;
    if file.format != FORMAT {
        return Err(Error::Tuning(format!(
            "tuning file {what} has format {} but this engine reads format {FORMAT}; {retune}",
            file.format
        )));
    }
    if &file.device != device {
        return Err(Error::Tuning(format!(
            "tuning file {what} was measured for {:?} but this is {:?}; {retune}",
            file.device, device
        )));
    }
    if let Some((k, c)) = file
        .entries
        .iter()
        .find(|(_, c)| c.splits == 0 || c.tile.is_some_and(|i| i >= SHARED_TILES.len()))
    {
        return Err(Error::Tuning(format!(
            "tuning file {what}: entry `{k}` names a kernel this engine does not have \
             ({c:?}); {retune}"
        )));
    }
    Ok(TuningTable {
        entries: file.entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> DeviceKey {
        DeviceKey {
            adapter: "llvmpipe".into(),
            driver: "Mesa 25".into(),
            backend: "vulkan".into(),
            profile: "software".into(),
            precision: "f32".into(),
            engine: "0.1.0".into(),
        }
    }

    #[test]
    fn files_round_trip_and_mismatches_are_errors() {
        let mut table = TuningTable::default();
        table.entries.insert(
            "3x3/1 64->64 56x56 b1 F(4,3)".into(),
            Choice {
                variant: ConvVariant::Shared,
                tile: Some(3),
                splits: 1,
            },
        );
        table.entries.insert(
            "3x3/1 512->512 7x7 b1 direct".into(),
            Choice {
                variant: ConvVariant::Shared,
                tile: Some(4),
                splits: 8,
            },
        );
        let text = to_json(&device(), &table);
        assert_eq!(from_json(&text, &device(), "t").unwrap(), table);
        // Another adapter, another engine version, a newer format, garbage, a bad tile.
        let other = DeviceKey {
            adapter: "NVIDIA H200".into(),
            ..device()
        };
        let newer = DeviceKey {
            engine: "0.2.0".into(),
            ..device()
        };
        for (text, key, says) in [
            (text.clone(), other, "measured for"),
            (text.clone(), newer, "measured for"),
            (
                text.replace("\"format\": 1", "\"format\": 99"),
                device(),
                "format 99",
            ),
            (text[..text.len() / 2].to_string(), device(), "corrupt"),
            (
                text.replace("\"tile\": 4", "\"tile\": 40"),
                device(),
                "does not have",
            ),
            (
                text.replace("\"shared\"", "\"warp\""),
                device(),
                "unknown conv variant",
            ),
        ] {
            let e = from_json(&text, &key, "t").unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("resnet tune"), "{e}");
        }
    }

    #[test]
    fn stems_differ_per_device() {
        let a = device();
        let b = DeviceKey {
            profile: "gpu".into(),
            ..device()
        };
        assert_eq!(a.file_stem(), device().file_stem());
        assert_ne!(a.file_stem(), b.file_stem());
    }
}
