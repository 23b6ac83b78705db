//! Kernel wrappers: one small module per kernel family (shaders in `shaders/*.wgsl`).
//!
//! [`Kernels`] owns the shader modules, the two bind group layouts and a pipeline cache keyed
//! by (shader, entry point, override constants). Each wrapper method turns one lowered op into a
//! [`Dispatch`]: it writes the op's shapes, arena offsets and flags into a small uniform buffer
//! (created once, here) and binds `uniform | arena | constants`.
//!
//! Binding conventions, shared by every shader:
//! * `@binding(0)`: the op's uniform;
//! * `@binding(1)`: the whole activation arena as ONE read_write storage buffer; tensors are
//!   addressed by element offsets in the uniform (a second, read-only view of the same buffer in
//!   the same dispatch would be a usage conflict);
//! * `@binding(2)`: the op's slot of the read-only weights buffer, laid out by
//!   [`Op::constants`](crate::graph::Op::constants) (absent for max pool);
//! * `@binding(3)`, `@binding(4)`: the texture conv variant's input and weights textures
//!   ([`texture`]).

mod conv;
mod elementwise;
mod pool;
pub mod texture;

pub use conv::ConvTextures;

pub use crate::plan::kernel::{ConvConfig, ConvVariant, DeviceProfile};

use super::Dispatch;
use std::collections::HashMap;
use std::sync::Mutex;

/// Environment variable that forces a conv variant (`shared`, `register` or `texture`).
pub const CONV_VARIANT_ENV: &str = "RESNET_CONV_VARIANT";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Shader {
    Conv,
    Pool,
    Elementwise,
    Texture,
}

impl Shader {
    fn source(self) -> &'static str {
        match self {
            Shader::Conv => include_str!("../../../shaders/conv.wgsl"),
            Shader::Pool => include_str!("../../../shaders/pool.wgsl"),
            Shader::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            Shader::Texture => include_str!("../../../shaders/texture.wgsl"),
        }
    }
}

/// Which bind group layout a pipeline uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bindings {
    /// uniform | arena
    Arena,
    /// uniform | arena | consts
    Consts,
    /// uniform | arena | consts | input texture | weights texture
    Textures,
    /// uniform | arena | storage texture (texture packing)
    Pack,
}

impl Bindings {
    const ALL: [Bindings; 4] = [
        Bindings::Arena,
        Bindings::Consts,
        Bindings::Textures,
        Bindings::Pack,
    ];

    fn label(self) -> &'static str {
        match self {
            Bindings::Arena => "kernels: uniform|arena",
            Bindings::Consts => "kernels: uniform|arena|consts",
            Bindings::Textures => "kernels: uniform|arena|consts|textures",
            Bindings::Pack => "kernels: uniform|arena|storage texture",
        }
    }

    fn entries(self) -> Vec<wgpu::BindGroupLayoutEntry> {
        let storage = |read_only| wgpu::BufferBindingType::Storage { read_only };
        let mut entries = vec![
            buffer_entry(0, wgpu::BufferBindingType::Uniform),
            buffer_entry(1, storage(false)),
        ];
        match self {
            Bindings::Arena => {}
            Bindings::Consts => entries.push(buffer_entry(2, storage(true))),
            Bindings::Textures => entries.extend([
                buffer_entry(2, storage(true)),
                texture_entry(3),
                texture_entry(4),
            ]),
            Bindings::Pack => entries.push(wgpu::BindGroupLayoutEntry {
                binding: 2,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::WriteOnly,
                    format: wgpu::TextureFormat::Rgba32Float,
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
                count: None,
            }),
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
    /// Software adapter (lavapipe, WARP, SwiftShader): prefer the register-only conv.
    software: bool,
    /// The texture conv variant may be chosen (see [`Kernels::set_textures`]).
    textures: bool,
    conv_variant: Option<ConvVariant>,
    /// One pipeline layout per [`Bindings`], in [`Bindings::ALL`] order.
    pipeline_layouts: Vec<wgpu::PipelineLayout>,
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// Bound as `consts` by kernels whose constants are optional and absent.
    dummy_consts: wgpu::Buffer,
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

impl Kernels {
    /// `limits`: the limits the device was opened with (nothing beyond them is requested).
    /// The conv variant may be forced with the `RESNET_CONV_VARIANT` environment variable.
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
        let conv_variant = std::env::var(CONV_VARIANT_ENV).ok().and_then(|v| {
            v.parse()
                .map_err(|e| log::warn!("ignoring {CONV_VARIANT_ENV}: {e}"))
                .ok()
        });
        let software = device.adapter_info().device_type == wgpu::DeviceType::Cpu;
        Kernels {
            device: device.clone(),
            max_groups_per_dim: limits.max_compute_workgroups_per_dimension,
            software,
            textures: software,
            conv_variant,
            pipeline_layouts,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            dummy_consts,
        }
    }

    /// Forces a conv variant for every later [`Kernels::conv`] call (`None`: the per-shape
    /// heuristic). Overrides `RESNET_CONV_VARIANT`.
    pub fn set_conv_variant(&mut self, variant: Option<ConvVariant>) {
        self.conv_variant = variant;
    }

    /// Allows or forbids the default choice of the texture conv variant (on by default on
    /// software adapters; a session turns it off when its textures would exceed the device's
    /// largest texture).
    pub fn set_textures(&mut self, on: bool) {
        self.textures = on;
    }

    /// Number of distinct pipelines created so far (each costs a driver compile).
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.lock().unwrap().len()
    }

    fn pipeline(
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
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        pipeline
    }

    /// `groups` workgroups as a grid within `max_compute_workgroups_per_dimension`: folded into
    /// y when needed (shaders linearise `wid.y * num_workgroups.x + wid.x` and drop the
    /// overshoot).
    fn grid(&self, groups: u32) -> [u32; 3] {
        let max = self.max_groups_per_dim.max(1);
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x);
        assert!(
            y <= max,
            "{groups} workgroups exceed the device's {max} x {max} grid"
        );
        [x, y, 1]
    }

    /// Creates the op's uniform buffer and bind group and wraps them with the pipeline:
    /// `uniform | arena | extra...` in the layout the pipeline was created with.
    fn dispatch(
        &self,
        label: &str,
        pipeline: wgpu::ComputePipeline,
        params: &[u8],
        arena: &wgpu::Buffer,
        extra: &[wgpu::BindingResource<'_>],
        groups: u32,
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
            workgroups: self.grid(groups),
            stage: None,
        }
    }

    fn dummy_consts(&self) -> wgpu::BufferBinding<'_> {
        self.dummy_consts.as_entire_buffer_binding()
    }
}

/// Element offset of a tensor in the arena from its byte offset.
fn elem_offset(offsets: &[u64], t: usize) -> u32 {
    let b = offsets[t];
    assert!(b.is_multiple_of(4), "arena offsets must be f32-aligned");
    u32::try_from(b / 4).expect("arena offset beyond 2^32 elements")
}

/// Checked `usize -> u32` for shapes written to uniforms.
fn u32_of(v: usize) -> u32 {
    u32::try_from(v).expect("shape does not fit in u32")
}
