//! `resnet plan`: the static dispatch list and memory plan, computed without a GPU.

use clap::Args;
use resnet_wgpu::engine;
use resnet_wgpu::gpu::{AdapterChoice, GpuContext};
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::plan::Precision;
use resnet_wgpu::plan::device::{Description, profile_from_env, with_env_overrides};
use resnet_wgpu::plan::emit::{self, Format};
use resnet_wgpu::plan::tuning::TuningTable;
use resnet_wgpu::plan::{DeviceProfile, Limits, PlanFor, PlanOptions, plan_with};
use resnet_wgpu::tune;
use resnet_wgpu::{Error, Result};

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    net: super::ModelArgs,
    /// Input height, if not --size.
    #[arg(long)]
    height: Option<usize>,
    /// Input width, if not --size.
    #[arg(long)]
    width: Option<usize>,
    /// Plan with the feature maps kept alive (as `infer --features` does).
    #[arg(long)]
    features: bool,
    /// Simulate a device whose largest storage binding is this many bytes (default: unlimited,
    /// or the --device file's).
    #[arg(long)]
    max_binding_bytes: Option<u64>,
    /// Plan for the device described in FILE (written by `resnet info --json` on the machine
    /// that has it): its limits, features and kind of kernels.
    #[arg(long, value_name = "FILE", conflicts_with = "tuned")]
    device: Option<std::path::PathBuf>,
    /// Plan the kernels a `gpu` or a `software` adapter (lavapipe) gets (default: gpu, or
    /// RESNET_DEVICE_PROFILE; with --tuned, the profile the adapter itself resolves to).
    #[arg(long, value_parser = super::parse_plan_for)]
    plan_for: Option<PlanFor>,
    /// Same as `--plan-for software`.
    #[arg(long, conflicts_with = "plan_for")]
    software: bool,
    /// Plan with the kernels `resnet tune` stored for this machine's adapter (opens it to read
    /// its name and driver); each conv then says whether its kernel is tuned or heuristic.
    #[arg(long)]
    tuned: bool,
    /// With --tuned: the adapter whose tuning to use (index or name substring, as `info`).
    #[arg(long, requires = "tuned")]
    adapter: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Storage precision of activations and weights: f32, or f16 (half the bytes; f32
    /// arithmetic, f32 input and logits).
    #[arg(long, default_value = "f32", value_parser = super::parse_precision)]
    precision: Precision,
    /// Also write the shader of every distinct pipeline of the plan into DIR (created if
    /// needed) as wgpu's backends translate it, one file each named by its pipeline key:
    /// FORMAT wgsl (the override constants applied), spv (SPIR-V 1.3: Vulkan 1.1), msl (MSL
    /// 4.0, or msl2.0 ... msl3.2) or hlsl (shader model 6.9, or hlsl5.1 for FXC, hlsl6.0 ...).
    /// Other files in DIR are left alone.
    #[arg(long, num_args = 2, value_names = ["FORMAT", "DIR"])]
    emit_shaders: Option<Vec<std::ffi::OsString>>,
}

pub fn run(args: PlanArgs) -> Result<()> {
    // A bad format fails before anything is planned.
    let emit = match args.emit_shaders.as_deref() {
        Some([format, dir]) => {
            let format = format.to_str().ok_or_else(|| {
                Error::Input(format!(
                    "unknown shader format {format:?}: use wgsl, spv, msl or hlsl"
                ))
            })?;
            Some((format.parse::<Format>()?, std::path::PathBuf::from(dir)))
        }
        Some(_) => {
            return Err(Error::Input(
                "--emit-shaders takes one FORMAT and one DIR, once".into(),
            ));
        }
        None => None,
    };
    // The plan depends on shapes only; seeded random weights stand in for a checkpoint.
    let (_, net) = args.net.network(0)?;
    if args.net.batch == 0 {
        return Err(Error::Input("--batch must be at least 1".into()));
    }
    let (h, w) = (
        args.height.unwrap_or(args.net.size),
        args.width.unwrap_or(args.net.size),
    );
    let graph = lower(
        &net.arch,
        &net.params,
        h,
        w,
        &LowerOptions {
            features: args.features,
        },
    )?;
    let described = match &args.device {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Input(format!(
                    "cannot read the device description {}: {e}",
                    path.display()
                ))
            })?;
            Some(Description::from_json(&text, &path.display().to_string())?)
        }
        None => None,
    };
    let mut limits = described
        .as_ref()
        .map_or_else(Limits::unlimited, Description::limits);
    if let Some(b) = args.max_binding_bytes {
        limits.max_binding_bytes = b;
    }
    // The flag, else RESNET_DEVICE_PROFILE over a GPU's profile (no adapter needed); the
    // RESNET_CONV_VARIANT / RESNET_WINOGRAD overrides apply as in a session.
    let asked = match (args.plan_for, args.software) {
        (Some(kind), _) => Some(with_env_overrides(kind.profile())?),
        (None, true) => Some(with_env_overrides(PlanFor::Software.profile())?),
        (None, false) => None,
    };
    let (device, tuning) = if args.tuned {
        // --tuned opens the adapter anyway: without --plan-for its profile is the one a
        // session on it resolves to (software on lavapipe), the one `resnet tune` stored for.
        let ctx = GpuContext::new(&AdapterChoice {
            backend: None,
            adapter: args.adapter.clone(),
        })?;
        let device = engine::resolve_profile(&ctx, asked)?;
        let table = stored_tuning(&ctx, &device, args.precision)?;
        (device, Some(std::sync::Arc::new(table)))
    } else {
        let device = match (asked, &described) {
            (Some(p), _) => p,
            (None, Some(d)) => profile_from_env(d.profile())?,
            (None, None) => profile_from_env(DeviceProfile::gpu())?,
        };
        (device, None)
    };
    let plan = plan_with(
        &graph,
        args.net.batch,
        &limits,
        &PlanOptions {
            precision: args.precision,
            device,
            tuning,
            ..Default::default()
        },
    )?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan.to_json(&graph)).expect("json")
        );
    } else {
        println!("{}", plan.describe(&graph));
    }
    if let Some((format, dir)) = emit {
        let files = emit::write_all(&plan.pipelines(), format, &dir)?;
        eprintln!(
            "emit-shaders: {} {format} files (one per pipeline) in {}",
            files.len(),
            dir.display()
        );
    }
    Ok(())
}

/// The tuning table stored for the adapter of `ctx`, for `device`'s kernel mix.
fn stored_tuning(
    ctx: &GpuContext,
    device: &DeviceProfile,
    precision: Precision,
) -> Result<TuningTable> {
    let key = tune::device_key(ctx, device, precision);
    let path = tune::tuning_path(&key).ok_or_else(|| {
        Error::Input("no cache folder to read tuning from: set RESNET_CACHE_DIR (or HOME)".into())
    })?;
    tune::load_file(&path, &key)?.ok_or_else(|| {
        Error::Input(format!(
            "no tuning stored for {} ({} kernels, {}) at {}; run `resnet tune` first{}",
            key.adapter,
            key.profile,
            key.precision,
            path.display(),
            match (device.software, ctx.is_software()) {
                (false, true) => " (with --plan-for gpu)",
                (true, false) => " (with --plan-for software)",
                _ => "",
            }
        ))
    })
}
