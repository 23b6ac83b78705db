//! Kernel wrappers: one small module per kernel family (shaders in `shaders/`).
//!
//! [`Kernels`] owns the shader modules, the bind group layouts and a pipeline cache keyed by
//! (shader, entry point, override constants). Each wrapper method turns one lowered op into
//! [`Dispatch`]es: it writes the op's shapes, arena offsets and flags into a small uniform
//! buffer (created once, here) and binds `uniform | arena | constants`.
//!
//! Binding conventions, shared by every shader:
//! * `@binding(0)`: the op's uniform;
//! * `@binding(1)`: the whole activation arena as ONE read_write storage buffer; tensors are
//!   addressed by element offsets in the uniform (a second, read-only view of the same buffer in
//!   the same dispatch would be a usage conflict);
//! * `@binding(2)`: the op's slot of the read-only weights buffer, laid out by
//!   [`Op::constants_for`](crate::graph::Op::constants_for) (absent for max pool);
//! * `@binding(3)`, `@binding(4)`: the texture conv variant's input and weights textures
//!   ([`texture`]).

pub mod conv;
mod elementwise;
mod pool;
pub mod texture;

pub use conv::ConvTextures;

pub use crate::plan::kernel::{
    ConvAlgo, ConvConfig, ConvPlan, ConvVariant, DeviceProfile, PlanFor, WinogradPolicy,
};

use super::Dispatch;
use std::collections::HashMap;
use std::sync::Mutex;

/// Environment variable that forces a conv variant (`shared`, `register`, `texture` or
/// `subgroup`) for every GEMM it can run.
pub const CONV_VARIANT_ENV: &str = "RESNET_CONV_VARIANT";
/// Environment variable that plans for another kind of device (`gpu`, `software`).
pub const DEVICE_PROFILE_ENV: &str = "RESNET_DEVICE_PROFILE";
/// Environment variable that sets which convs take Winograd (`auto`, `off`, `f2`, `f4`).
pub const WINOGRAD_ENV: &str = "RESNET_WINOGRAD";

/// A shader module: the WGSL files of one kernel, joined by plain concatenation (shared parts
/// first), so that every kernel is a file of its own without any templating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shader {
    ConvRegister,
    ConvShared,
    ConvTexture,
    ConvSubgroup,
    Winograd,
    Pack,
    Pool,
    Elementwise,
}

macro_rules! conv_source {
    ($io:literal, $kernel:literal) => {
        concat!(
            include_str!("../../../shaders/conv/common.wgsl"),
            include_str!(concat!("../../../shaders/conv/", $io)),
            include_str!(concat!("../../../shaders/conv/", $kernel))
        )
    };
}

impl Shader {
    pub(crate) const ALL: [Shader; 8] = [
        Shader::ConvRegister,
        Shader::ConvShared,
        Shader::ConvTexture,
        Shader::ConvSubgroup,
        Shader::Winograd,
        Shader::Pack,
        Shader::Pool,
        Shader::Elementwise,
    ];

    pub(crate) fn source(self) -> &'static str {
        match self {
            Shader::ConvRegister => conv_source!("io32.wgsl", "register.wgsl"),
            Shader::ConvShared => conv_source!("io32.wgsl", "shared.wgsl"),
            Shader::ConvTexture => conv_source!("io32.wgsl", "texture.wgsl"),
            Shader::ConvSubgroup => conv_source!("io64.wgsl", "subgroup.wgsl"),
            Shader::Winograd => conv_source!("io32.wgsl", "winograd.wgsl"),
            Shader::Pack => include_str!("../../../shaders/conv/pack.wgsl"),
            Shader::Pool => concat!(
                include_str!("../../../shaders/nhwc.wgsl"),
                include_str!("../../../shaders/pool.wgsl")
            ),
            Shader::Elementwise => concat!(
                include_str!("../../../shaders/nhwc.wgsl"),
                include_str!("../../../shaders/elementwise.wgsl")
            ),
        }
    }

    /// Device features the module needs beyond core WebGPU.
    pub(crate) fn features(self) -> wgpu::Features {
        match self {
            Shader::ConvSubgroup => wgpu::Features::SUBGROUP | wgpu::Features::SHADER_INT64,
            _ => wgpu::Features::empty(),
        }
    }
}

/// Every shader module as the kernels create it: `(name, WGSL source, device features it
/// needs)`, for validation and tools.
pub fn modules() -> Vec<(String, &'static str, wgpu::Features)> {
    Shader::ALL
        .iter()
        .map(|s| (format!("{s:?}"), s.source(), s.features()))
        .collect()
}

/// Which bind group layout a pipeline uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bindings {
    /// uniform | arena
    Arena,
    /// uniform | arena | consts
    Consts,
    /// uniform | arena | consts | input texture | weights texture
    Textures,
    /// uniform | arena | rgba32float storage texture (texture packing)
    Pack,
    /// uniform | arena | rgba16float storage texture (texture packing, f16 plans)
    Pack16,
}

impl Bindings {
    const ALL: [Bindings; 5] = [
        Bindings::Arena,
        Bindings::Consts,
        Bindings::Textures,
        Bindings::Pack,
        Bindings::Pack16,
    ];

    fn label(self) -> &'static str {
        match self {
            Bindings::Arena => "kernels: uniform|arena",
            Bindings::Consts => "kernels: uniform|arena|consts",
            Bindings::Textures => "kernels: uniform|arena|consts|textures",
            Bindings::Pack => "kernels: uniform|arena|storage texture",
            Bindings::Pack16 => "kernels: uniform|arena|storage texture (f16)",
        }
    }

    fn entries(self) -> Vec<wgpu::BindGroupLayoutEntry> {
        let storage = |read_only| wgpu::BufferBindingType::Storage { read_only };
        let mut entries = vec![
            buffer_entry(0, wgpu::BufferBindingType::Uniform),
            buffer_entry(1, storage(false)),
        ];
        let pack = |format| wgpu::BindGroupLayoutEntry {
            binding: 2,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::StorageTexture {
                access: wgpu::StorageTextureAccess::WriteOnly,
                format,
                view_dimension: wgpu::TextureViewDimension::D2,
            },
            count: None,
        };
        match self {
            Bindings::Arena => {}
            Bindings::Consts => entries.push(buffer_entry(2, storage(true))),
            Bindings::Textures => entries.extend([
                buffer_entry(2, storage(true)),
                texture_entry(3),
                texture_entry(4),
            ]),
            Bindings::Pack => entries.push(pack(wgpu::TextureFormat::Rgba32Float)),
            Bindings::Pack16 => entries.push(pack(wgpu::TextureFormat::Rgba16Float)),
        }
        entries
    }
}

/// Pipeline cache key: shader, entry point, override constants (values as f64 bits).
type PipelineKey = (Shader, &'static str, Vec<(&'static str, u64)>);

/// Pipelines, layouts and the policy that picks kernel variants. Create once per device.
pub struct Kernels {
    device: wgpu::Device,
    max_groups_per_dim: u32,
    profile: DeviceProfile,
    /// One pipeline layout per [`Bindings`], in [`Bindings::ALL`] order.
    pipeline_layouts: Vec<wgpu::PipelineLayout>,
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// Bound as `consts` by kernels whose constants are optional and absent.
    dummy_consts: wgpu::Buffer,
    /// Tests only: destroy the device once this many pipelines exist
    /// ([`crate::gpu::session::SessionOptions::destroy_device_after_pipelines`]).
    destroy_after: Option<usize>,
}

fn texture_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        // rgba32float is not filterable without a feature; textureLoad needs no sampler.
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    }
}

fn buffer_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// `base` (an adapter's own profile) with the environment's overrides: `RESNET_DEVICE_PROFILE`
/// replaces it with the heuristic of a GPU or a software adapter, then `RESNET_CONV_VARIANT`
/// forces a variant and `RESNET_WINOGRAD` sets the Winograd policy. A value that does not
/// parse is an error (a typo must not silently benchmark the wrong kernels).
pub fn profile_from_env(base: DeviceProfile) -> Result<DeviceProfile, crate::Error> {
    let profile = match env::<PlanFor>(DEVICE_PROFILE_ENV)? {
        Some(kind) => kind.profile(),
        None => base,
    };
    with_env_overrides(profile)
}

/// `profile` with `RESNET_CONV_VARIANT` and `RESNET_WINOGRAD` applied (what `--plan-for`
/// combines with: the flag picks the device kind, these still force kernels).
pub fn with_env_overrides(mut profile: DeviceProfile) -> Result<DeviceProfile, crate::Error> {
    if let Some(v) = env(CONV_VARIANT_ENV)? {
        profile.forced = Some(v);
    }
    if let Some(w) = env(WINOGRAD_ENV)? {
        profile.winograd = w;
    }
    Ok(profile)
}

fn env<T: std::str::FromStr<Err = crate::Error>>(name: &str) -> Result<Option<T>, crate::Error> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|e| {
            let why = match e {
                crate::Error::Input(m) => m,
                other => other.to_string(),
            };
            crate::Error::Input(format!("{name}={v}: {why}"))
        }),
        _ => Ok(None),
    }
}

/// The kernel profile of `device` itself: software or GPU, and which variants it can run.
pub fn adapter_profile(device: &wgpu::Device) -> DeviceProfile {
    let info = device.adapter_info();
    let software = info.device_type == wgpu::DeviceType::Cpu;
    // The subgroup variant's workgroup of 8 must be one subgroup.
    let subgroups = software
        && device.features().contains(Shader::ConvSubgroup.features())
        && info.subgroup_min_size >= 8;
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

/// The profile a session on `device` plans for: `profile` if given (e.g. a GPU's kernel mix
/// on lavapipe), otherwise the adapter's own with the environment's overrides
/// (RESNET_DEVICE_PROFILE, RESNET_CONV_VARIANT, RESNET_WINOGRAD). What this device cannot run
/// (the subgroup variant without its features) stays off. Creates nothing on the device.
pub fn resolve_profile(
    device: &wgpu::Device,
    profile: Option<DeviceProfile>,
) -> crate::Result<DeviceProfile> {
    let own = adapter_profile(device);
    let profile = match profile {
        Some(p) => p,
        None => profile_from_env(own)?,
    };
    Ok(DeviceProfile {
        subgroups: profile.subgroups && own.software && own.subgroups,
        ..profile
    })
}

impl Kernels {
    /// `limits`: the limits the device was opened with (nothing beyond them is requested).
    /// The profile is the adapter's own; see [`profile_from_env`] for the environment's
    /// overrides, which a session applies.
    pub fn new(device: &wgpu::Device, limits: &wgpu::Limits) -> Kernels {
        let pipeline_layouts = Bindings::ALL
            .iter()
            .map(|b| {
                let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(b.label()),
                    entries: &b.entries(),
                });
                device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(b.label()),
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                })
            })
            .collect();
        let dummy_consts = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernels: dummy consts"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Kernels {
            device: device.clone(),
            max_groups_per_dim: limits.max_compute_workgroups_per_dimension,
            profile: adapter_profile(device),
            pipeline_layouts,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            dummy_consts,
            destroy_after: None,
        }
    }

    /// As [`Kernels::new`], planning for [`resolve_profile`]`(device, profile)`.
    pub fn with_profile(
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        profile: Option<DeviceProfile>,
    ) -> crate::Result<Kernels> {
        let profile = resolve_profile(device, profile)?;
        let mut kernels = Kernels::new(device, limits);
        kernels.profile = profile;
        Ok(kernels)
    }

    /// What plan-time kernel choices should assume about this device (including a variant
    /// forced with [`Kernels::set_conv_variant`]).
    pub fn device_profile(&self) -> DeviceProfile {
        self.profile
    }

    /// Forces a conv variant for every GEMM it can run (`None`: the per-shape heuristic).
    pub fn set_conv_variant(&mut self, variant: Option<ConvVariant>) {
        self.profile.forced = variant;
    }

    /// Sets which convs take Winograd.
    pub fn set_winograd(&mut self, policy: WinogradPolicy) {
        self.profile.winograd = policy;
    }

    /// Tests only: destroys the device once `n` pipelines exist, so that a test can lose the
    /// device while a session is being built, at the same point on any adapter.
    pub(crate) fn destroy_device_after_pipelines(&mut self, n: Option<usize>) {
        self.destroy_after = n;
    }

    /// Allows or forbids the default choice of the texture conv variant (on by default on
    /// software adapters; a session turns it off when its textures would exceed the device's
    /// largest texture).
    pub fn set_textures(&mut self, on: bool) {
        self.profile.textures = on;
    }

    /// Number of distinct pipelines created so far (each costs a driver compile).
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.lock().unwrap().len()
    }

    pub(crate) fn pipeline(
        &self,
        shader: Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        bindings: Bindings,
    ) -> wgpu::ComputePipeline {
        let key: PipelineKey = (
            shader,
            entry,
            constants.iter().map(|&(k, v)| (k, v.to_bits())).collect(),
        );
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return p.clone();
        }
        let module = self
            .modules
            .lock()
            .unwrap()
            .entry(shader)
            .or_insert_with(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&format!("{shader:?}")),
                        source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                    })
            })
            .clone();
        let label = format!("{entry} {constants:?}");
        // `Instant` panics on wasm32-unknown-unknown (no clock in std there); the log line is
        // a native diagnostic.
        #[cfg(not(target_arch = "wasm32"))]
        let started = std::time::Instant::now();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&self.pipeline_layouts[bindings as usize]),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Every workgroup variable is written before it is read.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        #[cfg(not(target_arch = "wasm32"))]
        log::debug!("pipeline {label}: {:.2} s", started.elapsed().as_secs_f64());
        let count = {
            let mut pipelines = self.pipelines.lock().unwrap();
            pipelines.insert(key, pipeline.clone());
            pipelines.len()
        };
        if self.destroy_after == Some(count) {
            self.device.destroy();
        }
        pipeline
    }

    /// `groups` workgroups as a grid within `max_compute_workgroups_per_dimension`: folded into
    /// y when needed (shaders linearise `wid.y * num_workgroups.x + wid.x` and drop the
    /// overshoot); `z` independent copies (batched GEMMs) along z. The planner's addressing
    /// limit keeps `groups` far below the WebGPU minimum of 65535^2.
    fn grid(&self, groups: u32, z: u32) -> [u32; 3] {
        let max = self.max_groups_per_dim.max(1);
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x);
        debug_assert!(
            y <= max && z <= max,
            "{groups} x {z} workgroups exceed the grid"
        );
        [x, y.min(max), z.clamp(1, max)]
    }

    /// Creates the op's uniform buffer and bind group and wraps them with the pipeline:
    /// `uniform | arena | extra...` in the layout the pipeline was created with.
    pub(crate) fn dispatch(
        &self,
        label: &str,
        pipeline: wgpu::ComputePipeline,
        params: &[u8],
        arena: &wgpu::Buffer,
        extra: &[wgpu::BindingResource<'_>],
        groups: [u32; 2],
    ) -> Dispatch {
        // Not `create_buffer_init`: it panics when the device is lost (the mapping fails);
        // here the buffer is then just invalid, and the session reports the lost device.
        let uniform = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (params.len() as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT),
            usage: wgpu::BufferUsages::UNIFORM,
            mapped_at_creation: true,
        });
        if let Ok(mut view) = uniform.get_mapped_range_mut(..) {
            view.slice(..params.len()).copy_from_slice(params);
        }
        uniform.unmap();
        let entries: Vec<wgpu::BindGroupEntry<'_>> =
            [uniform.as_entire_binding(), arena.as_entire_binding()]
                .into_iter()
                .chain(extra.iter().cloned())
                .enumerate()
                .map(|(i, resource)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource,
                })
                .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch {
            label: label.to_string(),
            pipeline,
            bind_group,
            workgroups: self.grid(groups[0], groups[1]),
            stage: None,
        }
    }

    pub(crate) fn dummy_consts(&self) -> wgpu::BufferBinding<'_> {
        self.dummy_consts.as_entire_buffer_binding()
    }
}

/// Element offset (in its own dtype) of tensor `t` in the arena.
fn elem_offset(placements: &[crate::plan::Placement], t: usize) -> u32 {
    u32::try_from(placements[t].offset_elems())
        .expect("the planner keeps the arena within u32 elements")
}

/// Checked `usize -> u32` for shapes written to uniforms.
fn u32_of(v: usize) -> u32 {
    u32::try_from(v).expect("shape does not fit in u32")
}
