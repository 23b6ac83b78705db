//! Loading checkpoints in any flavour's own names and layouts (see `docs/models.md` and
//! `model/flavour/`), from safetensors files, transformers hub folders and ONNX graphs
//! (`onnx`), and writing them back out.
//!
//! Everything about the network is read off the checkpoint: the flavour from the names, the
//! depth from the unit indices, every channel count from the shapes. Presets are never
//! consulted, so non-standard depths and widths load like the released models. A file that
//! does not fit is rejected with *every* problem at once, because fixing a converter one
//! tensor per run is miserable.
//!
//! Three pieces share one description so that they cannot drift apart:
//! `skeleton` (which parameter groups an [`Arch`](crate::model::Arch) has), the flavours' specs
//! (what each calls them and how it lays them out) and `infer` (the arch from names and shapes).

mod infer;
mod names;
mod onnx;
mod onnx_proto;
pub(crate) mod skeleton;

use self::names::Canonicalizer;
use self::skeleton::{ConvSpec, Factory, Item, Slot, build_params, visit_params};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::model::arch::Flavour;
use crate::model::flavour::Companion;
use crate::model::params::{BatchNorm, ConvWeights};
use crate::preprocess::Preprocess;
use crate::tensor_file;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// How to read a checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Forces the flavour instead of detecting it from the names. Needed only when names are
    /// ambiguous; a wrong value makes loading fail with a [`Error::WeightMismatch`].
    pub flavour: Option<Flavour>,
}

/// An in-memory float32 tensor, for building checkpoints without a file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// A tensor's name, shape and dtype (safetensors spelling: `F32`, `F16`, `BF16`, `I64`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its dtype.
    pub dtype: String,
}

/// Anything tensors can be loaded from. Shapes and dtypes are listed separately from the data
/// so that a mismatching checkpoint is diagnosed without decoding any of it.
pub trait TensorSource {
    /// Every tensor's name, shape and dtype.
    fn infos(&self) -> Vec<TensorInfo>;
    /// The values of tensor `name`, widened to f32 if stored as F16 or BF16; [`Error::Dtype`]
    /// for any other dtype.
    fn read_f32(&self, name: &str) -> Result<Vec<f32>>;
}

impl TensorSource for SafeTensors<'_> {
    fn infos(&self) -> Vec<TensorInfo> {
        self.iter()
            .map(|(name, view)| TensorInfo {
                name: name.to_string(),
                shape: view.shape().to_vec(),
                dtype: format!("{:?}", view.dtype()),
            })
            .collect()
    }

    fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let view = self
            .tensor(name)
            .map_err(|e| Error::Input(format!("cannot read tensor `{name}`: {e}")))?;
        tensor_file::float_data(name, &view)
    }
}

impl TensorSource for HashMap<String, TensorData> {
    fn infos(&self) -> Vec<TensorInfo> {
        self.iter()
            .map(|(name, t)| TensorInfo {
                name: name.clone(),
                shape: t.shape.clone(),
                dtype: "F32".into(),
            })
            .collect()
    }

    fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        self.get(name)
            .map(|t| t.data.clone())
            .ok_or_else(|| Error::Input(format!("no tensor `{name}`")))
    }
}

/// The form [`export_tensors`] returns, so that a round trip needs no file. Lookups are linear:
/// meant for tests and small nets.
impl TensorSource for [(String, Vec<usize>, Vec<f32>)] {
    fn infos(&self) -> Vec<TensorInfo> {
        self.iter()
            .map(|(name, shape, _)| TensorInfo {
                name: name.clone(),
                shape: shape.clone(),
                dtype: "F32".into(),
            })
            .collect()
    }

    fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        self.iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, data)| data.clone())
            .ok_or_else(|| Error::Input(format!("no tensor `{name}`")))
    }
}

impl TensorSource for Vec<(String, Vec<usize>, Vec<f32>)> {
    fn infos(&self) -> Vec<TensorInfo> {
        self.as_slice().infos()
    }
    fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        self.as_slice().read_f32(name)
    }
}

/// Float dtypes weights may be stored in (safetensors spelling); F16 and BF16 are widened to
/// f32 exactly at load.
pub const WEIGHT_DTYPES: [&str; 3] = ["F32", "F16", "BF16"];

/// A loaded checkpoint with what its files say about using it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The architecture and its parameters.
    pub network: Network,
    /// The file the weights came from (inside a folder: its `model.safetensors`).
    pub file: PathBuf,
    /// What kind of file it was, for messages: `safetensors`, `ONNX (...)`.
    pub format: String,
    /// Evaluation preprocessing: from the files (transformers' `preprocessor_config.json`) or
    /// the flavour's own.
    pub preprocess: Preprocess,
    /// Class names from the files (transformers' `id2label`), if any.
    pub labels: Option<Vec<String>>,
    /// What was assumed for lack of information, for the user to see.
    pub notes: Vec<String>,
}

/// Loads a checkpoint of any flavour: a safetensors file, a transformers hub folder
/// (`model.safetensors` with `config.json` and `preprocessor_config.json`) or an ONNX file.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let file = weights_file(path)?;
    let bytes = tensor_file::read_file(&file)?;
    load_bytes(&bytes, &file, opts)
}

/// The checkpoint file `path` stands for: itself, or a hub folder's `model.safetensors`.
fn weights_file(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_owned());
    }
    let file = path.join("model.safetensors");
    if file.is_file() {
        return Ok(file);
    }
    let mut have: Vec<String> = std::fs::read_dir(path)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    have.sort();
    let onnx: Vec<&String> = have.iter().filter(|n| n.ends_with(".onnx")).collect();
    let hint = if let [one] = onnx[..] {
        format!(
            "; for the ONNX model pass --weights {}",
            path.join(one).display()
        )
    } else if have
        .iter()
        .any(|n| n.ends_with(".bin") || n.ends_with(".pt") || n.ends_with(".pth"))
    {
        "; PyTorch pickles are not read: convert them with `safetensors.torch.save_file` (see \
         README, \"Exporting a checkpoint\") or download the hub's model.safetensors"
            .to_string()
    } else {
        String::new()
    };
    Err(Error::Input(format!(
        "{} is a folder without a model.safetensors (it holds: {}){hint}",
        path.display(),
        if have.is_empty() {
            "nothing".to_string()
        } else {
            have.join(", ")
        }
    )))
}

/// [`load`] on a file's bytes already in memory; `path` is what errors mention and where
/// companion files are looked for. ONNX is recognised by the `.onnx` extension, or by content
/// when the bytes are not safetensors but parse as an ONNX `ModelProto`.
pub fn load_bytes(bytes: &[u8], path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let onnx = |bytes| match opts.flavour {
        // The graph says how it computes; names say nothing.
        Some(f) => Err(Error::Input(format!(
            "--flavour {f} does not apply to {}: an ONNX graph is read by its structure, not \
             its names; drop --flavour",
            path.display()
        ))),
        None => onnx::load_onnx(bytes, path),
    };
    let ext = path.extension().and_then(|e| e.to_str());
    if ext.is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
        return onnx(bytes);
    }
    let st = match tensor_file::parse(path, bytes) {
        Ok(st) => st,
        // Field 1 (`ir_version`, varint) is how every ONNX file starts.
        Err(e) if bytes.first() == Some(&0x08) && onnx::looks_like_onnx(bytes) => {
            log::debug!(
                "{}: not safetensors ({e}); reading it as ONNX",
                path.display()
            );
            return onnx(bytes);
        }
        Err(e) => return Err(e),
    };
    let (network, companion) = build(&st, opts.flavour, Some(path))?;
    Ok(finish(network, path, "safetensors".into(), companion))
}

/// The loaded network with the flavour's preprocessing where the files give none.
pub(crate) fn finish(network: Network, file: &Path, format: String, c: Companion) -> Loaded {
    Loaded {
        preprocess: c
            .preprocess
            .unwrap_or_else(|| network.arch.flavour.preprocess()),
        network,
        file: file.to_owned(),
        format,
        labels: c.labels,
        notes: c.notes,
    }
}

/// Loads a checkpoint (see [`load`]) and keeps only the network.
pub fn load_network(path: &Path, opts: &LoadOptions) -> Result<Network> {
    Ok(load(path, opts)?.network)
}

/// [`load_network`] on a file's bytes already in memory; `path` is what errors mention.
pub fn load_network_from_bytes(bytes: &[u8], path: &Path, opts: &LoadOptions) -> Result<Network> {
    Ok(load_bytes(bytes, path, opts)?.network)
}

/// Which flavour a list of tensor names is written in, as [`load_network`] decides it.
pub fn detect_flavour(names: &[&str]) -> Result<Flavour> {
    let names: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !names::is_ignored(n))
        .collect();
    names::detect(&names).map_err(Error::UnknownFlavour)
}

/// A tensor as the file has it, filed under its canonical name.
struct Entry {
    original: String,
    shape: Vec<usize>,
    dtype: String,
}

struct Catalog {
    entries: HashMap<String, Entry>,
}

impl infer::Shapes for Catalog {
    fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }
    fn shape(&self, canonical: &str) -> Option<&[usize]> {
        self.entries.get(canonical).map(|e| e.shape.as_slice())
    }
}

fn describe(name: &str, shape: &[usize], dtype: &str) -> String {
    if WEIGHT_DTYPES.contains(&dtype) {
        format!("`{name}` {shape:?}")
    } else {
        format!("`{name}` {shape:?} {dtype}")
    }
}

/// Builds a network from named tensors; `flavour` overrides detection. The core of
/// [`load_network`], usable on tensors that never touched a file (no companion files are read:
/// a transformers net gets transformers' defaults).
pub fn network_from_tensors<S: TensorSource + ?Sized>(
    src: &S,
    flavour: Option<Flavour>,
) -> Result<Network> {
    Ok(build(src, flavour, None)?.0)
}

/// [`network_from_tensors`], reading the flavour's companion files next to `path` if given.
fn build<S: TensorSource + ?Sized>(
    src: &S,
    flavour: Option<Flavour>,
    path: Option<&Path>,
) -> Result<(Network, Companion)> {
    let mut infos = src.infos();
    infos.retain(|i| !names::is_ignored(&i.name));
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    let all: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
    let detected = names::detect(&all);
    let flavour = match (flavour, &detected) {
        (Some(f), _) => f,
        (None, Ok(f)) => *f,
        (None, Err(why)) => return Err(Error::UnknownFlavour(why.clone())),
    };
    let hint = match detected {
        Ok(d) if d != flavour => Some(format!(
            "hint: the names look like {d} weights, but the flavour was set to {flavour}"
        )),
        _ => None,
    };
    let canon = Canonicalizer::new(flavour, &all);
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut unexpected = Vec::new();
    let mut duplicates = Vec::new();
    for info in infos {
        let Some(c) = canon.canonical(&info.name) else {
            unexpected.push(describe(&info.name, &info.shape, &info.dtype));
            continue;
        };
        if let Some(first) = entries.get(&c) {
            duplicates.push(format!(
                "duplicate: `{}` and `{}` both stand for `{c}`",
                first.original, info.name
            ));
            continue;
        }
        entries.insert(
            c,
            Entry {
                original: info.name,
                shape: info.shape,
                dtype: info.dtype,
            },
        );
    }
    let catalog = Catalog { entries };

    let mut arch = match infer::infer_arch(flavour, &catalog) {
        Ok(arch) => arch,
        Err(mut problems) => {
            problems.extend(duplicates);
            problems.extend(hint);
            return Err(Error::WeightMismatch {
                flavour: flavour.to_string(),
                problems,
            });
        }
    };
    let companion = match path {
        Some(p) => flavour.spec().companion(p, &mut arch)?,
        None => Companion::default(),
    };
    let mut reader = Reader {
        src,
        flavour,
        eps: arch.rules.bn_eps,
        scope: canon.scope().to_string(),
        catalog: &catalog,
        used: HashSet::new(),
        missing: Vec::new(),
        misshaped: Vec::new(),
        fatal: None,
    };
    let params = build_params(&arch, &mut reader);
    if let Some(e) = reader.fatal {
        return Err(e);
    }
    let mut leftovers: Vec<&Entry> = catalog
        .entries
        .iter()
        .filter(|(c, _)| !reader.used.contains(c.as_str()))
        .map(|(_, e)| e)
        .collect();
    leftovers.sort_by(|a, b| a.original.cmp(&b.original));
    unexpected.extend(
        leftovers
            .iter()
            .map(|e| describe(&e.original, &e.shape, &e.dtype)),
    );
    unexpected.sort();
    let mut problems = reader.missing;
    problems.extend(reader.misshaped);
    problems.extend(duplicates);
    problems.extend(unexpected.into_iter().map(|u| format!("unexpected {u}")));
    if !problems.is_empty() {
        problems.extend(hint);
        return Err(Error::WeightMismatch {
            flavour: flavour.to_string(),
            problems,
        });
    }
    Ok((Network { arch, params }, companion))
}

/// Reads the tensors the skeleton asks for and records, rather than stops at, what is wrong.
struct Reader<'a, S: TensorSource + ?Sized> {
    src: &'a S,
    flavour: Flavour,
    eps: f32,
    scope: String,
    catalog: &'a Catalog,
    used: HashSet<String>,
    missing: Vec<String>,
    misshaped: Vec<String>,
    fatal: Option<Error>,
}

impl<S: TensorSource + ?Sized> Reader<'_, S> {
    /// The data of canonical tensor `name` if it is there with exactly `expected`'s shape.
    fn take(&mut self, name: &str, expected: Vec<usize>) -> Option<Vec<f32>> {
        let Some(e) = self.catalog.entries.get(name) else {
            let shown = if self.scope.is_empty() {
                name.to_string()
            } else {
                format!("{}/{name}", self.scope)
            };
            self.missing
                .push(format!("missing `{shown}`, expected shape {expected:?}"));
            return None;
        };
        self.used.insert(name.to_string());
        if !WEIGHT_DTYPES.contains(&e.dtype.as_str()) {
            self.fatal.get_or_insert(Error::Dtype {
                name: e.original.clone(),
                dtype: e.dtype.clone(),
            });
            return None;
        }
        if e.shape != expected {
            self.misshaped.push(format!(
                "wrong shape `{}`: expected {expected:?}, found {:?}",
                e.original, e.shape
            ));
            return None;
        }
        // Once loading is bound to fail, decoding more data is wasted work.
        if self.fatal.is_some() || !self.missing.is_empty() || !self.misshaped.is_empty() {
            return None;
        }
        match self.src.read_f32(&e.original) {
            Ok(data) if data.len() == expected.iter().product::<usize>() => {
                if let Err(err) = check_finite(&e.original, &data) {
                    self.fatal.get_or_insert(err);
                    return None;
                }
                Some(data)
            }
            Ok(data) => {
                self.misshaped.push(format!(
                    "wrong size `{}`: shape {expected:?} needs {} values, found {}",
                    e.original,
                    expected.iter().product::<usize>(),
                    data.len()
                ));
                None
            }
            Err(err) => {
                self.fatal.get_or_insert(err);
                None
            }
        }
    }
}

/// A NaN or Inf weight would be swallowed by a ReLU downstream and give a confident, finite,
/// wrong answer: refuse it at load, where it can be named (with its first bad index).
pub(crate) fn check_finite(name: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFiniteWeight {
            name: name.to_string(),
            index,
            value: data[index],
        }),
    }
}

impl<S: TensorSource + ?Sized> Factory for Reader<'_, S> {
    fn conv(&mut self, slot: Slot, spec: &ConvSpec) -> ConvWeights {
        let layout = names::layout(self.flavour, slot);
        let (wname, bname) = names::conv(self.flavour, slot);
        let (kh, kw, cin, cout) = (spec.kh, spec.kw, spec.cin, spec.cout);
        let weight = self.take(&wname, layout.shape(kh, kw, cin, cout));
        let bias = if spec.bias {
            self.take(&bname, vec![cout])
        } else {
            None
        };
        let mut w = match weight {
            Some(data) => layout.to_hwio(data, kh, kw, cin, cout),
            // Loading fails anyway; the placeholder is never used.
            None => ConvWeights {
                kh,
                kw,
                cin,
                cout,
                weight: Vec::new(),
                bias: None,
            },
        };
        w.bias = bias;
        w
    }

    fn bn(&mut self, slot: Slot, channels: usize, _branch_end: bool) -> BatchNorm {
        let [gamma, beta, mean, var] = names::bn(self.flavour, slot)
            .map(|name| self.take(&name, vec![channels]).unwrap_or_default());
        BatchNorm {
            gamma,
            beta,
            mean,
            var,
            eps: self.eps,
        }
    }
}

/// The network's tensors under its flavour's own names and layouts (slim under the scope
/// `resnet_v2_<depth>`), in network order: what a framework export of it would hold.
///
/// The names carry the flavour, not [`Arch::rules`](crate::model::Arch): a network whose rules
/// differ from its flavour's (an ONNX graph, a transformers config) is refused by
/// [`save_network`], since loading the file back would compute something else.
pub fn export_tensors(net: &Network) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let f = net.arch.flavour;
    let scope = f.spec().export_scope(net.arch.depth());
    let full = |name: String| match &scope {
        Some(s) => format!("{s}/{name}"),
        None => name,
    };
    let mut out = Vec::new();
    visit_params(&net.params, |slot, item| match item {
        Item::Conv(w) => {
            let (wname, bname) = names::conv(f, slot);
            let (shape, data) = names::layout(f, slot).hwio_to_file(w);
            out.push((full(wname), shape, data));
            if let Some(b) = &w.bias {
                out.push((full(bname), vec![b.len()], b.clone()));
            }
        }
        Item::Bn(bn) => {
            let values = [&bn.gamma, &bn.beta, &bn.mean, &bn.var];
            for (name, v) in names::bn(f, slot).into_iter().zip(values) {
                out.push((full(name), vec![v.len()], v.clone()));
            }
        }
    });
    out
}

/// Writes [`export_tensors`] as a safetensors file that [`load_network`] reads back.
pub fn save_network(net: &Network, path: &Path) -> Result<()> {
    if net.arch.rules != net.arch.flavour.rules() {
        return Err(Error::Input(format!(
            "this network computes by other rules than {} names can say ({:?}); saving it \
             under those names would load back as a different network",
            net.arch.flavour, net.arch.rules
        )));
    }
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = export_tensors(net)
        .into_iter()
        .map(|(name, shape, data)| {
            let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, bytes)
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.as_str(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Input(format!("cannot encode the weights: {e}")))?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| tensor_file::write_error(path, e))
}
