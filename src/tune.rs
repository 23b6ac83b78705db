//! `resnet tune`: times the candidate GEMM kernels of every distinct conv shape of a network on
//! the adapter at hand (timestamp queries around each dispatch), keeps the fastest per shape,
//! and stores the table in the user's cache folder, keyed by adapter, driver, backend, profile
//! and precision ([`DeviceKey`]). Plans then take the tuned choice per layer.
//!
//! One session per candidate: a candidate (say `shared 64x128`) is a tuning table that names it
//! for every shape it can run, so the plan, pipelines and dispatches timed are exactly those a
//! tuned session runs later. The heuristic's own plan is timed the same way, so a shape keeps
//! the heuristic's kernel unless a candidate beat it; the whole network is then timed with the
//! heuristic and the tuned plan, interleaved, for the report.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::gpu::session::{Session, SessionOptions};
use crate::gpu::timing::Timing;
use crate::graph::{Graph, Op};
use crate::plan::kernel::{ConvVariant, DeviceProfile, SHARED_TILES, SPLIT_K_MAX};
use crate::plan::tuning::{self, Choice, DeviceKey, Origin, TuningTable};
use crate::plan::{Precision, Step};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to tune for.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    /// Storage precision to tune for.
    pub precision: Precision,
    /// The kernel mix to tune (`None`: the adapter's own profile, as a session resolves it).
    pub profile: Option<DeviceProfile>,
    /// Timed runs per candidate (the fastest run of each layer counts: on a shared machine
    /// other load only ever makes a run slower).
    pub repeats: usize,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            precision: Precision::F32,
            profile: None,
            repeats: 3,
        }
    }
}

/// One distinct conv shape's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ShapeResult {
    /// The shape's key in the tuning table.
    pub key: String,
    /// Layers of the network with this shape (their times are summed).
    pub layers: usize,
    /// What the heuristic picks.
    pub heuristic: String,
    /// Its time, milliseconds (summed over the layers).
    pub heuristic_ms: f64,
    /// The fastest candidate.
    pub best: String,
    /// Its time, milliseconds (summed over the layers).
    pub best_ms: f64,
    /// Every candidate that could run this shape, with its time.
    pub candidates: Vec<(String, f64)>,
}

/// What [`tune`] found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TuneReport {
    /// The device the results are for.
    pub device: DeviceKey,
    #[serde(skip)]
    /// The tuned choices, as stored.
    pub table: TuningTable,
    /// Every shape's outcome.
    pub shapes: Vec<ShapeResult>,
    /// Whole-network forward time (mean of the timed runs, seconds) with the heuristic's plan
    /// and with the tuned one, measured interleaved.
    pub heuristic_s: f64,
    /// The same with the tuned plan.
    pub tuned_s: f64,
}

/// The key a tuning file for `ctx` planning `profile` at `precision` carries.
pub fn device_key(ctx: &GpuContext, profile: &DeviceProfile, precision: Precision) -> DeviceKey {
    let a = ctx.summary();
    DeviceKey {
        adapter: a.name,
        driver: format!("{} {}", a.driver, a.driver_info).trim().to_string(),
        backend: a.backend,
        profile: if profile.software { "software" } else { "gpu" }.into(),
        precision: precision.name().into(),
        engine: env!("CARGO_PKG_VERSION").into(),
    }
}

/// The candidates worth timing on `profile`: every variant it can run, every shared tile on a
/// GPU profile (software adapters: the 64x64 one; their barriers are costly), and split K.
pub fn candidates(profile: &DeviceProfile) -> Vec<Choice> {
    let plain = |variant| Choice {
        variant,
        tile: None,
        splits: 1,
    };
    let mut c = vec![plain(ConvVariant::Register)];
    if profile.textures {
        c.push(plain(ConvVariant::Texture));
    }
    if profile.subgroups {
        c.push(plain(ConvVariant::Subgroup));
    }
    let tiles: Vec<usize> = if profile.software {
        vec![3]
    } else {
        (0..SHARED_TILES.len()).collect()
    };
    for tile in tiles {
        c.push(Choice {
            variant: ConvVariant::Shared,
            tile: Some(tile),
            splits: 1,
        });
    }
    if !profile.software {
        let mut s = 2;
        while s <= SPLIT_K_MAX {
            c.push(Choice {
                variant: ConvVariant::Shared,
                tile: Some(SHARED_TILES.len() - 1),
                splits: s,
            });
            s *= 2;
        }
    }
    c
}

/// Per conv step of `session`'s plan: its index, tuning key and the step.
fn keyed_steps<'a>(
    graph: &'a Graph,
    session: &'a Session,
    batch: usize,
) -> impl Iterator<Item = (usize, String, &'a Step)> + 'a {
    session
        .plan()
        .steps
        .iter()
        .enumerate()
        .filter_map(move |(i, step)| match (&graph.ops[i], step.conv) {
            (Op::Conv(c), Some(plan)) => {
                Some((i, tuning::key(c, &graph.tensors, batch, plan.algo), step))
            }
            _ => None,
        })
}

/// Fastest time of each step over `repeats` timed runs (after one untimed run that compiles
/// the pipelines on drivers that defer it).
fn step_times(session: &Session, input: &[f32], batch: usize, repeats: usize) -> Result<Vec<f64>> {
    session.run_nchw(input, batch)?;
    let mut best = vec![f64::INFINITY; session.plan().steps.len()];
    for _ in 0..repeats.max(1) {
        let (_, t) = session.run_nchw_timed(input, batch, Timing::PerDispatch)?;
        let t = t.ok_or_else(|| Error::Gpu("the adapter returned no timestamps".into()))?;
        for (b, s) in best.iter_mut().zip(&t.per_dispatch) {
            *b = b.min(*s);
        }
    }
    Ok(best)
}

/// Tunes `graph` at `batch` images on `ctx`: see the module docs. Needs timestamp queries.
pub fn tune(
    ctx: &GpuContext,
    graph: &Graph,
    batch: usize,
    opts: &TuneOptions,
) -> Result<TuneReport> {
    let profile = crate::engine::resolve_profile(ctx, opts.profile)?;
    let device = device_key(ctx, &profile, opts.precision);
    let session_opts = |tuning: Option<TuningTable>| SessionOptions {
        precision: opts.precision,
        profile: Some(profile),
        tuning: tuning.map(Arc::new),
        ..Default::default()
    };
    let heuristic = Session::with_options(ctx, graph.clone(), batch, &session_opts(None))?;
    if !heuristic.has_timestamps() {
        return Err(Error::Gpu(
            "tuning needs timestamp queries, which this adapter does not offer (wgpu feature \
             TIMESTAMP_QUERY); plans on it use the heuristic"
                .into(),
        ));
    }
    let [c, h, w] = heuristic.input_shape();
    let input = crate::model::random::random_input(batch * c * h * w, 0x7E57);

    // Shapes, in network order, with the heuristic's choice and time.
    let mut order: Vec<String> = Vec::new();
    let mut layers: BTreeMap<String, usize> = BTreeMap::new();
    let mut heuristic_choice: BTreeMap<String, Choice> = BTreeMap::new();
    let mut times: BTreeMap<String, Vec<(Choice, f64)>> = BTreeMap::new();
    // The heuristic is timed again after every candidate and keeps its fastest run per
    // layer, so a drift in background load (a shared CPU, a GPU's clocks) favours no side.
    let mut base = step_times(&heuristic, &input, batch, opts.repeats)?;
    for (_, key, step) in keyed_steps(graph, &heuristic, batch) {
        let plan = step.conv.expect("conv step");
        if !layers.contains_key(&key) {
            order.push(key.clone());
        }
        *layers.entry(key.clone()).or_default() += 1;
        heuristic_choice.insert(key, Choice::of(&plan));
    }

    for candidate in candidates(&profile) {
        // The candidate for every shape it can run; the others keep the heuristic's kernel.
        let mut table = TuningTable::default();
        for (_, key, step) in keyed_steps(graph, &heuristic, batch) {
            let (Op::Conv(op), Some(plan)) = (&graph.ops[step.op], step.conv) else {
                continue;
            };
            if candidate.runs_on(&profile, plan.algo, op.kh * op.kw * op.cin) {
                table.entries.insert(key, candidate);
            }
        }
        if table.is_empty() {
            continue;
        }
        let session = Session::with_options(ctx, graph.clone(), batch, &session_opts(Some(table)))?;
        let t = step_times(&session, &input, batch, opts.repeats)?;
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        for (i, key, step) in keyed_steps(graph, &session, batch) {
            if step.conv.is_some_and(|p| p.origin == Origin::Tuned) {
                *sums.entry(key).or_default() += t[i] * 1e3;
            }
        }
        for (key, ms) in sums {
            times.entry(key).or_default().push((candidate, ms));
        }
        drop(session);
        let again = step_times(&heuristic, &input, batch, 1)?;
        base.iter_mut().zip(again).for_each(|(b, a)| *b = b.min(a));
    }
    let mut base_ms: BTreeMap<String, f64> = BTreeMap::new();
    for (i, key, _) in keyed_steps(graph, &heuristic, batch) {
        *base_ms.entry(key).or_default() += base[i] * 1e3;
    }

    let mut table = TuningTable::default();
    let mut shapes = Vec::new();
    for key in order {
        let h_choice = heuristic_choice[&key];
        let h_ms = base_ms[&key];
        let cands = times.remove(&key).unwrap_or_default();
        let (best, best_ms) = cands
            .iter()
            .copied()
            .filter(|(_, ms)| ms.is_finite())
            .fold((h_choice, h_ms), |b, c| if c.1 < b.1 { c } else { b });
        table.entries.insert(key.clone(), best);
        shapes.push(ShapeResult {
            layers: layers[&key],
            heuristic: h_choice.describe(),
            heuristic_ms: h_ms,
            best: best.describe(),
            best_ms,
            candidates: cands.iter().map(|(c, ms)| (c.describe(), *ms)).collect(),
            key,
        });
    }

    // The whole network, heuristic and tuned, interleaved so background load hits both.
    let tuned = Session::with_options(
        ctx,
        graph.clone(),
        batch,
        &session_opts(Some(table.clone())),
    )?;
    tuned.run_nchw(&input, batch)?;
    let (mut hs, mut ts) = (Vec::new(), Vec::new());
    for _ in 0..opts.repeats.max(1) {
        for (session, out) in [(&heuristic, &mut hs), (&tuned, &mut ts)] {
            let (_, t) = session.run_nchw_timed(&input, batch, Timing::Whole)?;
            out.push(t.map_or(f64::NAN, |t| t.gpu_seconds));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(TuneReport {
        device,
        table,
        shapes,
        heuristic_s: mean(&hs),
        tuned_s: mean(&ts),
    })
}

/// The folder tuning files live in: `RESNET_CACHE_DIR`, else `$XDG_CACHE_HOME/resnet-wgpu`,
/// else `~/.cache/resnet-wgpu` (`%LOCALAPPDATA%\resnet-wgpu` on Windows).
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("RESNET_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("resnet-wgpu")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("resnet-wgpu")))
        .or_else(|| var("LOCALAPPDATA").map(|d| d.join("resnet-wgpu")))
}

/// Where the tuning file of `device` lives (`None`: no cache folder can be named).
pub fn tuning_path(device: &DeviceKey) -> Option<PathBuf> {
    cache_dir().map(|d| d.join(format!("{}.json", device.file_stem())))
}

/// Reads the tuning file at `path` for `device`. `Ok(None)`: there is none.
pub fn load_file(path: &Path, device: &DeviceKey) -> Result<Option<TuningTable>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    tuning::from_json(&text, device, &path.display().to_string()).map(Some)
}

/// The tuning table of `ctx` for `profile` and `precision`, if `resnet tune` wrote one. A file
/// that cannot be used (corrupt, stale, unreadable) is not trusted: `Err` says why and what to
/// do, and callers plan with the heuristic.
pub fn load(
    ctx: &GpuContext,
    profile: Option<DeviceProfile>,
    precision: Precision,
) -> Result<Option<(PathBuf, TuningTable)>> {
    let profile = crate::engine::resolve_profile(ctx, profile)?;
    let device = device_key(ctx, &profile, precision);
    let Some(path) = tuning_path(&device) else {
        return Ok(None);
    };
    Ok(load_file(&path, &device)?.map(|t| (path, t)))
}

/// The tuning table front ends plan with on `ctx` (the CLI's commands, the Python package):
/// what [`load`] finds, with the file it came from, or `None`. A file that cannot be used is
/// not trusted: `None`, and the second value says why, for the caller to warn with.
pub fn load_or_warn(
    ctx: &GpuContext,
    profile: Option<DeviceProfile>,
    precision: Precision,
) -> (Option<(PathBuf, Arc<TuningTable>)>, Option<String>) {
    match load(ctx, profile, precision) {
        Ok(found) => (found.map(|(path, t)| (path, Arc::new(t))), None),
        Err(e) => (
            None,
            Some(format!("{e}; planning with the heuristic's kernels")),
        ),
    }
}

/// Writes `table` as the tuning file of `device`, merged over the entries of a valid file
/// already there (other models and batch sizes keep theirs); returns its path. Written to a
/// temporary file and renamed, so a crash never leaves half a file.
pub fn save(device: &DeviceKey, table: &TuningTable) -> Result<PathBuf> {
    let path = tuning_path(device).ok_or_else(|| {
        Error::Input(
            "no cache folder to store tuning results in: set RESNET_CACHE_DIR (or HOME)".into(),
        )
    })?;
    let mut merged = match load_file(&path, device) {
        Ok(Some(old)) => old,
        _ => TuningTable::default(),
    };
    merged.entries.extend(table.entries.clone());
    let dir = path.parent().expect("file in a folder");
    let write_err = |source| Error::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, tuning::to_json(device, &merged)).map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(path)
}
