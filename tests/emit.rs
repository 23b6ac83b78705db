//! Metal, DX12 and Vulkan up to the driver, without their hardware: every pipeline the planner
//! can produce goes through naga's validator and its SPIR-V, MSL and HLSL writers with the
//! options wgpu's backends use (`plan::emit`), at every MSL version and HLSL shader model wgpu
//! may ask for, and every SPIR-V module through `spirv-val --target-env vulkan1.1` (this test
//! FAILS without spirv-val: `apt-get install spirv-tools`).
//!
//! "Every pipeline": the distinct pipeline keys of the plans over a grid of networks (every
//! flavour, basic and bottleneck units, a wide net whose 3x3 convs have K >= 1024 for split K,
//! feature maps kept) x device profiles (GPU: Winograd by rule, off, F(4,3) forced; software:
//! textures and subgroups, without textures, without either, F(4,3) forced) x f32/f16 x
//! WebGPU's default limits and unlimited x batch 1 and 5 (with sizes 1 and 2), each planned by
//! the heuristic and with tuning tables forcing every candidate `resnet tune` times (every
//! variant, every shared tile, split K) plus split K on every shared tile. The test checks what
//! the union reaches (every entry point of every module, every shared tile with and without
//! split K, both storage types, every forced choice honoured somewhere) and its size, per entry
//! point (see `EXPECTED`).

mod common;

use resnet_wgpu::graph::{Graph, Op};
use resnet_wgpu::plan::emit::{self, Format, HLSL_SHADER_MODELS, MSL_VERSIONS};
use resnet_wgpu::plan::kernel::{self, SHARED_TILES};
use resnet_wgpu::plan::launch::pipeline_space;
use resnet_wgpu::plan::tuning::{self, Choice, Origin, TuningTable};
use resnet_wgpu::plan::{
    ConvVariant, DeviceProfile, Limits, PipelineKey, PlanOptions, Precision, plan_with,
};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use common::nets::{networks, profiles};

/// The choices the tuning tables force, one table each: every candidate `resnet tune` times on
/// `profile`, and on GPUs split K on every shared tile (the tuner splits only the smallest).
fn forced_choices(profile: &DeviceProfile) -> Vec<Choice> {
    let mut choices = resnet_wgpu::tune::candidates(profile);
    if !profile.software {
        for tile in 0..SHARED_TILES.len() {
            choices.push(Choice {
                variant: ConvVariant::Shared,
                tile: Some(tile),
                splits: 2,
            });
        }
    }
    choices.sort_by_key(|c| (c.variant.name(), c.tile, c.splits));
    choices.dedup();
    choices
}

/// A table naming `choice` for every conv of `g`, under the key the plan looks it up by (the
/// heuristic's algorithm at the requested batch); the plan ignores it where `choice` cannot
/// run.
fn forcing(
    g: &Graph,
    batch: usize,
    profile: &DeviceProfile,
    precision: Precision,
    choice: Choice,
) -> TuningTable {
    let mut table = TuningTable::default();
    for op in &g.ops {
        if let Op::Conv(c) = op {
            let algo =
                kernel::choose_algo(c, &g.tensors, batch, profile, precision == Precision::F16);
            table
                .entries
                .insert(tuning::key(c, &g.tensors, batch, algo), choice);
        }
    }
    table
}

/// What the grid planned: the distinct keys, the plans made, and the forced choices that some
/// plan took.
struct Grid {
    keys: HashSet<PipelineKey>,
    plans: usize,
    taken: HashSet<Choice>,
    forced: HashSet<Choice>,
}

fn grid() -> Grid {
    let webgpu = Limits::from_wgpu(&wgpu::Limits::default(), wgpu::Features::empty());
    let limits = [("unlimited", Limits::unlimited()), ("webgpu", webgpu)];
    let mut grid = Grid {
        keys: HashSet::new(),
        plans: 0,
        taken: HashSet::new(),
        forced: HashSet::new(),
    };
    for (net, g) in networks() {
        for (profile_name, profile) in profiles() {
            for precision in [Precision::F32, Precision::F16] {
                for (limits_name, limits) in &limits {
                    for (batch, sizes) in [(1, vec![]), (5, vec![1, 2])] {
                        let tables = std::iter::once(None).chain(
                            forced_choices(&profile)
                                .into_iter()
                                .map(|c| Some((c, forcing(&g, batch, &profile, precision, c)))),
                        );
                        for table in tables {
                            let what = format!(
                                "{net}, {profile_name}, {}, {limits_name}, batch {batch}, \
                                 forced {:?}",
                                precision.name(),
                                table.as_ref().map(|t| t.0)
                            );
                            let opts = PlanOptions {
                                precision,
                                device: profile,
                                tuning: table.as_ref().map(|t| Arc::new(t.1.clone())),
                                batch_sizes: sizes.clone(),
                            };
                            let plan = plan_with(&g, batch, limits, &opts)
                                .unwrap_or_else(|e| panic!("{what}: {e}"));
                            grid.plans += 1;
                            if let Some((choice, _)) = table {
                                grid.forced.insert(choice);
                                let took =
                                    plan.steps.iter().filter_map(|s| s.conv).any(|c| {
                                        c.origin == Origin::Tuned && Choice::of(&c) == choice
                                    });
                                if took {
                                    grid.taken.insert(choice);
                                }
                            }
                            grid.keys
                                .extend(plan.pipelines().into_iter().map(PipelineKey::generic));
                        }
                    }
                }
            }
        }
    }
    grid
}

/// Every entry point of every shader module, read from the modules.
fn entry_points() -> BTreeSet<String> {
    resnet_wgpu::gpu::kernels::modules()
        .iter()
        .flat_map(|(name, src, _)| {
            let m = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {e}"));
            m.entry_points.into_iter().map(|ep| ep.name)
        })
        .collect()
}

fn constant(key: &PipelineKey, name: &str) -> Option<f64> {
    key.constants.iter().find(|c| c.0 == name).map(|c| c.1)
}

/// `shader Module, entry point{constants}`: how a failure names a pipeline.
fn named(key: &PipelineKey) -> String {
    format!("{} {key}", key.shader.name())
}

/// The formats a key is translated to: WGSL, SPIR-V, and every MSL version and HLSL shader
/// model wgpu may ask for where its backend offers the module's features.
fn formats(key: &PipelineKey) -> Vec<Format> {
    [Format::Wgsl, Format::Spv]
        .into_iter()
        .chain(MSL_VERSIONS.map(Format::Msl))
        .chain(HLSL_SHADER_MODELS.map(Format::Hlsl))
        .filter(|f| f.offers(key.shader.features()))
        .collect()
}

/// The key space's size per entry point, counted from the tile tables: each conv GEMM
/// variant's configurations (the shared variant: every tile, with and without split K; the
/// texture variant: one per pixel count; the register and subgroup variants: one shape), the
/// shared and register variants each with VEC4, IS_1X1 and CHECKS on and off (x 8), all of
/// them and the two Winograd transforms with each of the 3 storage pairs (A_F16, W_F16) =
/// (0, 0) in f32 plans, (0, 1) and (1, 1) in f16 ones; split K's reduction with W_F16 0 and
/// 1; the packing, the pools and bn_relu with no constants. 240 + 24 + 6 + 3 + 3 + 3 + 2 + 1
/// + 1 + 1 + 1 = 285 today.
fn expected_space() -> BTreeMap<&'static str, usize> {
    let pairs = 3;
    let flags = 8;
    BTreeMap::from([
        ("conv_shared", SHARED_TILES.len() * 2 * flags * pairs),
        ("conv_register", flags * pairs),
        ("conv_texture", kernel::TEXTURE_ROWS.len() * pairs),
        ("conv_subgroup", pairs),
        ("winograd_input", pairs),
        ("winograd_output", pairs),
        ("splitk_reduce", 2),
        ("pack_texture", 1),
        ("max_pool", 1),
        ("global_avg_pool", 1),
        ("bn_relu", 1),
    ])
}

fn per_entry<'a>(keys: impl IntoIterator<Item = &'a PipelineKey>) -> BTreeMap<&'static str, usize> {
    let mut by_entry = BTreeMap::new();
    for k in keys {
        *by_entry.entry(k.entry).or_default() += 1;
    }
    by_entry
}

/// The planner's grid against its own enumeration of the key space (`pipeline_space`): every
/// key a plan of the grid launches is in the space, and the grid reaches every entry point,
/// every shared tile with and without split K, both constant types of every conv kernel, and
/// every choice its tuning tables force.
#[test]
fn the_key_space_holds_every_planned_pipeline() {
    let started = Instant::now();
    let grid = grid();
    let planned_s = started.elapsed().as_secs_f64();
    let space: HashSet<PipelineKey> = pipeline_space().into_iter().collect();
    assert_eq!(
        space.len(),
        pipeline_space().len(),
        "the space lists a key twice"
    );
    let mut outside: Vec<String> = grid.keys.difference(&space).map(named).collect();
    outside.sort();
    assert!(
        outside.is_empty(),
        "planned but not in plan::launch::pipeline_space (add them there):\n{}",
        outside.join("\n")
    );

    let keys = &grid.keys;
    let entries: BTreeSet<String> = keys.iter().map(|k| k.entry.to_string()).collect();
    assert_eq!(
        entries,
        entry_points(),
        "entry points planned vs the modules'"
    );
    for (i, t) in SHARED_TILES.iter().enumerate() {
        for split in [0.0, 1.0] {
            let found = keys.iter().any(|k| {
                let tile = [
                    ("WG_M", t.wg_m),
                    ("WG_N", t.wg_n),
                    ("TM", t.tm),
                    ("TN4", t.tn4),
                    ("BK", t.bk),
                ];
                k.entry == "conv_shared"
                    && tile
                        .iter()
                        .all(|&(n, v)| constant(k, n) == Some(f64::from(v)))
                    && constant(k, "SPLIT_K") == Some(split)
            });
            assert!(
                found,
                "shared tile {i} ({t:?}) with SPLIT_K={split} is never planned"
            );
        }
    }
    for entry in entries
        .iter()
        .filter(|e| e.starts_with("conv_") || e.starts_with("winograd") || *e == "splitk_reduce")
    {
        for w in [0.0, 1.0] {
            assert!(
                keys.iter()
                    .any(|k| k.entry == entry && constant(k, "W_F16") == Some(w)),
                "{entry} never planned with W_F16={w}"
            );
        }
    }
    let missed: Vec<_> = grid.forced.difference(&grid.taken).collect();
    assert!(missed.is_empty(), "forced but never planned: {missed:?}");
    eprintln!(
        "{} plans ({planned_s:.1} s): {} distinct pipelines of the {} in the space {:?}",
        grid.plans,
        keys.len(),
        space.len(),
        per_entry(keys.iter())
    );
}

/// Every key of the space (so every pipeline any plan can launch) through naga's validator
/// and every writer at every version wgpu may ask for, and its SPIR-V through spirv-val.
#[test]
fn every_pipeline_translates_for_every_backend_and_its_spirv_validates() {
    let mut keys = pipeline_space();
    keys.sort_by_key(|k| (k.shader, k.file_stem()));
    assert_eq!(
        per_entry(&keys),
        expected_space(),
        "pipelines per entry point"
    );
    assert_eq!(keys.len(), 285, "see expected_space");
    let stems: HashSet<String> = keys.iter().map(PipelineKey::file_stem).collect();
    assert_eq!(stems.len(), keys.len(), "two keys share a file name");

    // Every key through every writer, the SPIR-V into files; on every core.
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-emit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = keys.len().div_ceil(threads);
    let translated = Instant::now();
    let (failures, spv_files): (Vec<String>, Vec<(String, PathBuf)>) = std::thread::scope(|s| {
        let workers: Vec<_> = keys
            .chunks(chunk)
            .map(|part| {
                let dir = &dir;
                s.spawn(move || {
                    let (mut failures, mut files) = (Vec::new(), Vec::new());
                    for key in part {
                        match emit::translate_each(key, &formats(key)) {
                            Ok(out) => {
                                let file = dir.join(emit::file_name(key, Format::Spv));
                                std::fs::write(&file, &out[1]).unwrap();
                                files.push((named(key), file));
                            }
                            Err(e) => failures.push(e.to_string()),
                        }
                    }
                    (failures, files)
                })
            })
            .collect();
        let mut all = (Vec::new(), Vec::new());
        for w in workers {
            let (f, s) = w.join().unwrap();
            all.0.extend(f);
            all.1.extend(s);
        }
        all
    });
    let translate_s = translated.elapsed().as_secs_f64();
    assert!(
        failures.is_empty(),
        "{} of {} pipelines fail to translate:\n{}",
        failures.len(),
        keys.len(),
        failures.join("\n")
    );

    let validated = Instant::now();
    let invalid: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = spv_files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|(key, file)| {
                            common::spirv_val(file)
                                .err()
                                .map(|e| format!("{key} ({}): {e}", file.display()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let validate_s = validated.elapsed().as_secs_f64();
    assert!(
        invalid.is_empty(),
        "{} of {} SPIR-V modules fail spirv-val --target-env vulkan1.1:\n{}",
        invalid.len(),
        spv_files.len(),
        invalid.join("\n")
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let writes: usize = keys.iter().map(|k| formats(k).len()).sum();
    eprintln!(
        "{} pipelines: {writes} translations ({translate_s:.1} s), {} spirv-val runs \
         ({validate_s:.1} s)",
        keys.len(),
        spv_files.len()
    );
}
