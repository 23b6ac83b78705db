//! What the planner knows of a device besides its [`Limits`](super::Limits): the kind of
//! kernels to plan for ([`DeviceProfile`]), from the adapter's description and the
//! environment's overrides, and the description itself ([`Description`], what
//! `resnet info --json` writes). Pure functions: the GPU side hands in the adapter's facts.

use super::launch::Shader;
use super::variant::ConvVariant;
use crate::error::Error;
use crate::winograd::Tile;
use std::str::FromStr;

/// Which convs take Winograd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WinogradPolicy {
    /// The plan's rule ([`super::kernel::winograd_tile`]).
    Auto,
    /// Every conv direct.
    Off,
    /// Every eligible conv with this tile.
    Force(Tile),
}

impl FromStr for WinogradPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(WinogradPolicy::Auto),
            "off" | "direct" | "none" => Ok(WinogradPolicy::Off),
            "f2" | "f(2,3)" => Ok(WinogradPolicy::Force(Tile::F2)),
            "f4" | "f(4,3)" => Ok(WinogradPolicy::Force(Tile::F4)),
            _ => Err(Error::Input(format!(
                "unknown Winograd policy `{s}`: use auto, off, f2 or f4"
            ))),
        }
    }
}

/// What the kernel choice depends on besides shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceProfile {
    /// Software rasteriser (lavapipe, WARP, SwiftShader): no workgroup memory, no barriers.
    pub software: bool,
    /// The texture variant may be chosen (software adapters, unless the plan's textures would
    /// exceed the device's largest texture).
    pub textures: bool,
    /// The subgroup variant can run: subgroups of 8 and 64-bit integers.
    pub subgroups: bool,
    /// Forces one variant for every conv GEMM it can run (`RESNET_CONV_VARIANT`, tests).
    pub forced: Option<ConvVariant>,
    /// Which convs take Winograd (`RESNET_WINOGRAD`).
    pub winograd: WinogradPolicy,
}

impl DeviceProfile {
    /// A hardware GPU with the default heuristic (what `resnet plan` shows).
    pub fn gpu() -> DeviceProfile {
        DeviceProfile {
            software: false,
            textures: false,
            subgroups: false,
            forced: None,
            winograd: WinogradPolicy::Auto,
        }
    }

    /// A software adapter (lavapipe) with the default heuristic.
    pub fn software() -> DeviceProfile {
        DeviceProfile {
            software: true,
            textures: true,
            subgroups: true,
            forced: None,
            winograd: WinogradPolicy::Auto,
        }
    }
}

impl Default for DeviceProfile {
    fn default() -> Self {
        DeviceProfile::gpu()
    }
}

/// Which kind of device a plan is made for (`--plan-for`, `RESNET_DEVICE_PROFILE`): lavapipe
/// can execute exactly the kernel mix and tiles a discrete GPU would get, so that mix is
/// tested end to end without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanFor {
    /// A GPU's kernel mix.
    Gpu,
    /// A software adapter's (lavapipe's) kernel mix.
    Software,
}

impl PlanFor {
    /// The device profile for this kind of device.
    pub fn profile(self) -> DeviceProfile {
        match self {
            PlanFor::Gpu => DeviceProfile::gpu(),
            PlanFor::Software => DeviceProfile::software(),
        }
    }
}

impl FromStr for PlanFor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "gpu" => Ok(PlanFor::Gpu),
            "software" | "cpu" => Ok(PlanFor::Software),
            _ => Err(Error::Input(format!(
                "unknown device profile `{s}`: use gpu or software"
            ))),
        }
    }
}

/// Environment variable that forces a conv variant (`shared`, `register`, `texture` or
/// `subgroup`) for every GEMM it can run.
pub const CONV_VARIANT_ENV: &str = "RESNET_CONV_VARIANT";
/// Environment variable that plans for another kind of device (`gpu`, `software`).
pub const DEVICE_PROFILE_ENV: &str = "RESNET_DEVICE_PROFILE";
/// Environment variable that sets which convs take Winograd (`auto`, `off`, `f2`, `f4`).
pub const WINOGRAD_ENV: &str = "RESNET_WINOGRAD";

/// `base` (an adapter's own profile) with the environment's overrides: `RESNET_DEVICE_PROFILE`
/// replaces it with the heuristic of a GPU or a software adapter, then `RESNET_CONV_VARIANT`
/// forces a variant and `RESNET_WINOGRAD` sets the Winograd policy. A value that does not
/// parse is an error (a typo must not silently benchmark the wrong kernels).
pub fn profile_from_env(base: DeviceProfile) -> Result<DeviceProfile, Error> {
    let profile = match env::<PlanFor>(DEVICE_PROFILE_ENV)? {
        Some(kind) => kind.profile(),
        None => base,
    };
    with_env_overrides(profile)
}

/// `profile` with `RESNET_CONV_VARIANT` and `RESNET_WINOGRAD` applied (what `--plan-for`
/// combines with: the flag picks the device kind, these still force kernels).
pub fn with_env_overrides(mut profile: DeviceProfile) -> Result<DeviceProfile, Error> {
    if let Some(v) = env(CONV_VARIANT_ENV)? {
        profile.forced = Some(v);
    }
    if let Some(w) = env(WINOGRAD_ENV)? {
        profile.winograd = w;
    }
    Ok(profile)
}

fn env<T: std::str::FromStr<Err = Error>>(name: &str) -> Result<Option<T>, Error> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|e| {
            let why = match e {
                Error::Input(m) => m,
                other => other.to_string(),
            };
            Error::Input(format!("{name}={v}: {why}"))
        }),
        _ => Ok(None),
    }
}

/// The kernel profile of an adapter: software or GPU, and which variants it can run.
/// `software`: a CPU adapter (lavapipe, SwiftShader, WARP); `features`: the device's;
/// `subgroup_min_size`: the adapter's smallest subgroup.
pub fn adapter_profile(
    software: bool,
    features: wgpu::Features,
    subgroup_min_size: u32,
) -> DeviceProfile {
    // The subgroup variant's workgroup of 8 must be one subgroup.
    let subgroups =
        software && features.contains(Shader::ConvSubgroup.features()) && subgroup_min_size >= 8;
    DeviceProfile {
        software,
        // Not in the browser: Chrome's SwiftShader WebGPU loses the device (its GPU process
        // dies) minutes into a session with texture convs, while the buffer variants run the
        // same networks there in milliseconds.
        textures: software && cfg!(not(target_arch = "wasm32")),
        subgroups,
        forced: None,
        winograd: WinogradPolicy::Auto,
    }
}

/// The profile a session on an adapter whose own profile is `own` plans for: `profile` if
/// given (e.g. a GPU's kernel mix on lavapipe), otherwise `own` with the environment's
/// overrides. What the adapter cannot run (the subgroup variant without its features) stays
/// off.
pub fn resolve_profile(
    own: DeviceProfile,
    profile: Option<DeviceProfile>,
) -> Result<DeviceProfile, Error> {
    let profile = match profile {
        Some(p) => p,
        None => profile_from_env(own)?,
    };
    Ok(DeviceProfile {
        subgroups: profile.subgroups && own.software && own.subgroups,
        ..profile
    })
}

/// What the planner needs to know of an adapter, as JSON: `resnet info --json` writes it,
/// `resnet plan --device FILE` plans for it, so that the plan for a user's GPU can be made and
/// read on any machine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Description {
    /// [`Description::FORMAT`].
    pub format: u32,
    /// The adapter's name.
    pub name: String,
    /// The wgpu backend (`Vulkan`, `Metal`, ...).
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `Cpu`, ...
    pub device_type: String,
    /// The driver and its version.
    pub driver: String,
    /// The smallest subgroup the adapter runs (0: unknown).
    pub subgroup_min_size: u32,
    /// The limits a session opens the device with (the adapter's own).
    pub limits: DescribedLimits,
    /// The device features, by wgpu's names (`SHADER_F16`, `SUBGROUP`, ...).
    pub features: Vec<String>,
}

/// The wgpu limits a plan depends on, each as the `wgpu::Limits` field of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[allow(missing_docs)]
pub struct DescribedLimits {
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub min_storage_buffer_offset_alignment: u32,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_texture_dimension_2d: u32,
}

impl Description {
    /// The file format's version.
    pub const FORMAT: u32 = 1;

    /// The description of an adapter opened with `limits` and `features`.
    pub fn new(info: &wgpu::AdapterInfo, limits: &wgpu::Limits, features: wgpu::Features) -> Self {
        Description {
            format: Self::FORMAT,
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            subgroup_min_size: info.subgroup_min_size,
            limits: DescribedLimits {
                max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
                max_buffer_size: limits.max_buffer_size,
                min_storage_buffer_offset_alignment: limits.min_storage_buffer_offset_alignment,
                max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
                max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
                max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
                max_texture_dimension_2d: limits.max_texture_dimension_2d,
            },
            features: features.iter_names().map(|(n, _)| n.to_string()).collect(),
        }
    }

    /// Reads a description written by `resnet info --json` (`what` names it in errors).
    pub fn from_json(text: &str, what: &str) -> Result<Description, Error> {
        let d: Description = serde_json::from_str(text).map_err(|e| {
            Error::Input(format!(
                "{what} is not a device description ({e}); write one with `resnet info --json`"
            ))
        })?;
        if d.format != Self::FORMAT {
            return Err(Error::Input(format!(
                "{what} is a device description of format {}, this build reads format {}; \
                 write it again with this build's `resnet info --json`",
                d.format,
                Self::FORMAT
            )));
        }
        d.features()?;
        Ok(d)
    }

    /// The features, parsed.
    pub fn features(&self) -> Result<wgpu::Features, Error> {
        self.features
            .iter()
            .try_fold(wgpu::Features::empty(), |acc, n| {
                wgpu::Features::from_name(n).map(|f| acc | f).ok_or_else(|| {
                Error::Input(format!(
                    "unknown device feature `{n}` in the device description (wgpu's names, as \
                     `resnet info --json` writes them)"
                ))
            })
            })
    }

    /// Whether it is a software adapter (lavapipe, SwiftShader, WARP).
    pub fn software(&self) -> bool {
        self.device_type == "Cpu"
    }

    /// The planner's limits for this device.
    pub fn limits(&self) -> super::Limits {
        let l = &self.limits;
        let wgpu = wgpu::Limits {
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_texture_dimension_2d: l.max_texture_dimension_2d,
            ..wgpu::Limits::default()
        };
        super::Limits::from_wgpu(&wgpu, self.features().unwrap_or(wgpu::Features::empty()))
    }

    /// The kernel profile a session on this device plans for (before the environment's
    /// overrides).
    pub fn profile(&self) -> DeviceProfile {
        adapter_profile(
            self.software(),
            self.features().unwrap_or(wgpu::Features::empty()),
            self.subgroup_min_size,
        )
    }
}
