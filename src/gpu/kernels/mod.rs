//! Pipelines and bind groups for the plan's launches ([`crate::plan::launch`]): [`Kernels`]
//! owns the shader modules, one bind group layout per [`Bindings`] and a pipeline cache keyed
//! by [`PipelineKey`]; [`Kernels::record`] turns launches into [`Dispatch`]es (a uniform
//! buffer and a bind group each) over a session's buffers and textures. Nothing here chooses
//! a kernel, a size or an offset: the plan did.

pub mod texture;

pub use crate::plan::launch::{Bindings, PipelineKey, Shader};

use super::{Dispatch, TextureCopy, lock};
use crate::plan::launch::BindingKind;
use crate::plan::{DeviceProfile, Dtype, Launch, Resource, device};
use std::collections::HashMap;
use std::sync::Mutex;

/// Every shader module as the kernels create it: `(name, WGSL source, device features it
/// needs)`, for validation and tools.
pub fn modules() -> Vec<(String, &'static str, wgpu::Features)> {
    Shader::ALL
        .iter()
        .map(|s| (s.name(), s.source(), s.features()))
        .collect()
}

fn entries(bindings: Bindings) -> Vec<wgpu::BindGroupLayoutEntry> {
    (0u32..)
        .zip(bindings.kinds())
        .map(|(binding, kind)| match *kind {
            BindingKind::Uniform => buffer_entry(binding, wgpu::BufferBindingType::Uniform),
            BindingKind::Storage { read_only } => {
                buffer_entry(binding, wgpu::BufferBindingType::Storage { read_only })
            }
            BindingKind::SampledTexture => texture_entry(binding),
            BindingKind::StorageTexture => wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::WriteOnly,
                    format: wgpu::TextureFormat::Rgba32Float,
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
                count: None,
            },
        })
        .collect()
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

/// The kernel profile of `device` itself ([`device::adapter_profile`] of its adapter's facts).
pub fn adapter_profile(device: &wgpu::Device) -> DeviceProfile {
    let info = device.adapter_info();
    device::adapter_profile(
        info.device_type == wgpu::DeviceType::Cpu,
        device.features(),
        info.subgroup_min_size,
    )
}

/// What the launches bind besides their uniforms: the session's buffers and textures.
#[derive(Clone, Copy)]
pub struct Resources<'a> {
    /// The activation arena.
    pub arena: &'a wgpu::Buffer,
    /// The weights buffers, indexed as [`crate::plan::Plan::weight_buffers`].
    pub weights: &'a [wgpu::Buffer],
    /// The texture variant's staging textures (f32, f16), where the plan has them.
    pub staging: [Option<&'a wgpu::Texture>; 2],
    /// Texture copies of the weights buffers, where a texture conv reads them.
    pub weight_textures: &'a [Option<wgpu::Texture>],
}

impl Resources<'_> {
    fn staging(&self, dtype: Dtype) -> &wgpu::Texture {
        self.staging[usize::from(dtype == Dtype::F16)]
            .unwrap_or_else(|| panic!("the plan sizes the {} staging texture", dtype.name()))
    }
}

/// Compiled pipelines and their layouts. Create once per device.
pub struct Kernels {
    device: wgpu::Device,
    /// One pipeline layout per [`Bindings`], in [`Bindings::ALL`] order.
    pipeline_layouts: Vec<wgpu::PipelineLayout>,
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// Bound where a launch has [`Resource::NoWeights`].
    dummy_consts: wgpu::Buffer,
    /// Tests only: destroy the device once this many pipelines exist
    /// ([`crate::gpu::session::SessionOptions::destroy_device_after_pipelines`]).
    destroy_after: Option<usize>,
}

impl Kernels {
    /// The layouts and an empty pipeline cache for `device`.
    pub fn new(device: &wgpu::Device) -> Kernels {
        let pipeline_layouts = Bindings::ALL
            .iter()
            .map(|&b| {
                let label = format!("kernels: {b:?}");
                let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&label),
                    entries: &entries(b),
                });
                device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(&label),
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
            pipeline_layouts,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            dummy_consts,
            destroy_after: None,
        }
    }

    /// Tests only: destroys the device once `n` pipelines exist, so that a test can lose the
    /// device while a session is being built, at the same point on any adapter.
    pub(crate) fn destroy_device_after_pipelines(&mut self, n: Option<usize>) {
        self.destroy_after = n;
    }

    /// Number of distinct pipelines created so far (each costs a driver compile).
    pub fn pipeline_count(&self) -> usize {
        lock(&self.pipelines).len()
    }

    /// The pipeline of `key`, created on first use.
    pub fn pipeline(&self, key: &PipelineKey) -> wgpu::ComputePipeline {
        if let Some(p) = lock(&self.pipelines).get(key) {
            return p.clone();
        }
        let shader = key.shader;
        let module = lock(&self.modules)
            .entry(shader)
            .or_insert_with(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&shader.name()),
                        source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                    })
            })
            .clone();
        let label = key.to_string();
        // `Instant` panics on wasm32-unknown-unknown (no clock in std there); the log line is
        // a native diagnostic.
        #[cfg(not(target_arch = "wasm32"))]
        let started = std::time::Instant::now();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&self.pipeline_layouts[key.bindings as usize]),
                module: &module,
                entry_point: Some(key.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &key.constants,
                    // Every workgroup variable is written before it is read.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        #[cfg(not(target_arch = "wasm32"))]
        log::debug!("pipeline {label}: {:.2} s", started.elapsed().as_secs_f64());
        let count = {
            let mut pipelines = lock(&self.pipelines);
            pipelines.insert(key.clone(), pipeline.clone());
            pipelines.len()
        };
        if self.destroy_after == Some(count) {
            self.device.destroy();
        }
        pipeline
    }

    /// The dispatches of `launches` over `res`: each launch's pipeline, a uniform buffer
    /// holding its bytes, and a bind group of `uniform | arena | its bindings`.
    pub fn record(&self, launches: &[Launch], res: &Resources<'_>) -> Vec<Dispatch> {
        launches.iter().map(|l| self.dispatch(l, res)).collect()
    }

    fn dispatch(&self, l: &Launch, res: &Resources<'_>) -> Dispatch {
        let pipeline = self.pipeline(&l.pipeline);
        // Not `create_buffer_init`: it panics when the device is lost (the mapping fails);
        // here the buffer is then just invalid, and the session reports the lost device.
        let uniform = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&l.label),
            size: (l.uniform.len() as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT),
            usage: wgpu::BufferUsages::UNIFORM,
            mapped_at_creation: true,
        });
        if let Ok(mut view) = uniform.get_mapped_range_mut(..) {
            view.slice(..l.uniform.len()).copy_from_slice(&l.uniform);
        }
        uniform.unmap();
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        let views: Vec<Option<wgpu::TextureView>> = l
            .bindings
            .iter()
            .map(|r| match *r {
                Resource::StagingTexture(d) => Some(view(res.staging(d))),
                Resource::PackTarget { .. } => Some(view(res.staging(Dtype::F32))),
                Resource::WeightsTexture(b) => {
                    Some(view(res.weight_textures[b].as_ref().expect(
                        "the plan copies this weights buffer into a texture",
                    )))
                }
                Resource::Weights(_) | Resource::NoWeights => None,
            })
            .collect();
        let extra = l.bindings.iter().zip(&views).map(|(r, v)| match (r, v) {
            (Resource::Weights(w), _) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &res.weights[w.buffer],
                offset: w.offset_bytes,
                size: wgpu::BufferSize::new(w.size_bytes),
            }),
            (Resource::NoWeights, _) => {
                wgpu::BindingResource::Buffer(self.dummy_consts.as_entire_buffer_binding())
            }
            (_, Some(v)) => wgpu::BindingResource::TextureView(v),
            (_, None) => unreachable!("every texture binding has a view"),
        });
        let entries: Vec<wgpu::BindGroupEntry<'_>> =
            [uniform.as_entire_binding(), res.arena.as_entire_binding()]
                .into_iter()
                .chain(extra)
                .enumerate()
                .map(|(i, resource)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource,
                })
                .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&l.label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch {
            label: l.label.clone(),
            step: l.step,
            key: l.pipeline.clone(),
            pipeline,
            bind_group,
            workgroups: l.workgroups,
            copy: l.copy_before.map(|c| TextureCopy {
                buffer: res.arena.clone(),
                offset: c.offset_bytes,
                texels: c.texels,
                texture: res.staging(c.dtype).clone(),
            }),
        }
    }
}
