//! Picking an adapter and opening a device with the adapter's own limits.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A wgpu backend the user can pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl Backend {
    fn backends(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

impl FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(Backend::Vulkan),
            "metal" => Ok(Backend::Metal),
            "dx12" | "d3d12" => Ok(Backend::Dx12),
            "gl" | "gles" | "opengl" => Ok(Backend::Gl),
            _ => Err(Error::Input(format!(
                "unknown backend `{s}`: use vulkan, metal, dx12 or gl"
            ))),
        }
    }
}

/// How to choose the adapter.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    /// Only this backend. Default: Vulkan/Metal/DX12, and GL only if none of those has an adapter
    /// (GL compute is far slower).
    pub backend: Option<Backend>,
    /// An index into [`list_adapters`] or a case-insensitive substring of the adapter name.
    pub adapter: Option<String>,
}

/// Adapter identity as printed in logs and benchmark reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
}

impl From<&wgpu::AdapterInfo> for AdapterSummary {
    fn from(i: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend),
            device_type: format!("{:?}", i.device_type),
            driver: i.driver.clone(),
            driver_info: i.driver_info.clone(),
        }
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {} {})",
            self.name, self.backend, self.device_type, self.driver, self.driver_info
        )
    }
}

/// An open device and what we know about it.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The limits the device was opened with (the adapter's own, not wgpu's defaults).
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu finds on the given backends (all of them when `None`).
pub fn list_adapters(backend: Option<Backend>) -> Vec<wgpu::Adapter> {
    let backends = backend.map_or(wgpu::Backends::all(), Backend::backends);
    pollster::block_on(instance(backends).enumerate_adapters(backends))
}

fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn choose_adapter(choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    let mut adapters = match choice.backend {
        Some(b) => list_adapters(Some(b)),
        None => {
            let primary = pollster::block_on(
                instance(wgpu::Backends::PRIMARY).enumerate_adapters(wgpu::Backends::PRIMARY),
            );
            if primary.is_empty() {
                log::warn!("no Vulkan/Metal/DX12 adapter; falling back to GL (much slower)");
                list_adapters(Some(Backend::Gl))
            } else {
                primary
            }
        }
    };
    let scope = choice
        .backend
        .map_or(String::new(), |b| format!(" on backend {b:?}"));
    if adapters.is_empty() {
        return Err(Error::NoAdapter(scope));
    }
    if let Some(want) = &choice.adapter {
        let names: Vec<String> = adapters
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{i}: {}", a.get_info().name))
            .collect();
        let pick = match want.parse::<usize>() {
            Ok(i) if i < adapters.len() => Some(i),
            _ => adapters.iter().position(|a| {
                a.get_info()
                    .name
                    .to_lowercase()
                    .contains(&want.to_lowercase())
            }),
        };
        return match pick {
            Some(i) => Ok(adapters.swap_remove(i)),
            None => Err(Error::NoAdapter(format!(
                " matching `{want}`{scope} (found: {})",
                names.join("; ")
            ))),
        };
    }
    adapters.sort_by_key(|a| preference(a.get_info().device_type));
    Ok(adapters.swap_remove(0))
}

impl GpuContext {
    /// Picks an adapter and opens a device with the adapter's full limits (wgpu's defaults
    /// allow only 16 KiB of workgroup memory and 128 MiB bindings) and timestamp queries where
    /// available.
    pub fn new(choice: &AdapterChoice) -> Result<GpuContext> {
        let adapter = choose_adapter(choice)?;
        let info = adapter.get_info();
        log::info!("using adapter {}", AdapterSummary::from(&info));
        let limits = adapter.limits();
        let features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("resnet-wgpu"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Device(format!("{e} (adapter {})", info.name)))?;
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            features,
        })
    }

    /// Wraps a device the application already has (e.g. its renderer's).
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
    ) -> GpuContext {
        let limits = device.limits();
        let features = device.features();
        GpuContext {
            device,
            queue,
            info,
            limits,
            features,
        }
    }

    pub fn summary(&self) -> AdapterSummary {
        AdapterSummary::from(&self.info)
    }

    /// Whether this is a software rasteriser (lavapipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }
}
