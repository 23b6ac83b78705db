//! ResNet inference as WGSL compute shaders on wgpu.
//!
//! One image's path from file to logits, module by module:
//! [`model`] (the network description and its weights, loaded from safetensors) →
//! [`graph`] (lowered to fused ops with batch norm folded) → [`plan`] (ordered dispatches and a
//! shared memory arena, pure data) → [`gpu`] (pipelines, bind groups and buffers created once;
//! a forward pass uploads, submits and reads back). [`cpu`] is the naive reference for all of it.
//!
//! # Embedding
//!
//! A [`Classifier`] on the app's own [`wgpu::Device`] (its renderer's, say): the app opens the
//! device with the [`wgpu`] this crate re-exports, wraps it in a [`gpu::GpuContext`], and
//! classifies decoded images. [`Classifier::new`] opens a device itself instead, and
//! [`Classifier::session`] hands out the input and logits buffers for GPU-resident I/O.
//!
//! ```no_run
//! use resnet_wgpu::gpu::GpuContext;
//! use resnet_wgpu::preprocess::load_image;
//! use resnet_wgpu::{Classifier, ClassifierOptions, Model, wgpu};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // The app's device (pollster here; any executor will do).
//!     let instance =
//!         wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
//!     let adapter =
//!         pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
//!     let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
//!         required_limits: adapter.limits(),
//!         ..Default::default()
//!     }))?;
//!     let ctx = GpuContext::from_device(device, queue, adapter.get_info());
//!
//!     // The weights as the framework wrote them: the flavour and its preprocessing are
//!     // inferred from the file (`ClassifierOptions` overrides them).
//!     let model = Model::load("resnet50.safetensors")?;
//!     let classifier = Classifier::with_context(&model, &ctx, &ClassifierOptions::default())?;
//!     let image = load_image("cat.jpg".as_ref())?;
//!     for p in &classifier.classify(&[image], 5)?[0] {
//!         println!("{:.3} {}", p.probability, p.label);
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Natively every call that waits for the GPU blocks; each has an `_async` form running the
//! same code, the only form in the browser (wasm32 with the `webgpu` feature).
//!
//! # Features
//!
//! | feature | default | what it gives |
//! |---|---|---|
//! | `cli` | yes | the `resnet` binary's dependencies (clap, indicatif, env_logger); the library never needs it |
//! | `emit-shaders` | yes (through `cli`) | `plan::emit`: a pipeline's shader as wgpu's backends translate it (SPIR-V, MSL, HLSL), with naga's writers; native only |
//! | `vulkan` | yes | wgpu's Vulkan backend (Linux, Windows, Android) |
//! | `metal` | yes | wgpu's Metal backend (macOS, iOS) |
//! | `dx12` | yes | wgpu's DirectX 12 backend (Windows) |
//! | `gl` | yes | wgpu's OpenGL/GLES backend (Linux, Windows, Android), a slow fallback |
//! | `webgpu` | yes | wgpu's WebGPU backend (wasm32 in the browser) |
//!
//! An app takes `default-features = false` and the backends it runs on, e.g.
//! `resnet-wgpu = { version = "0.1", default-features = false, features = ["vulkan"] }`.
//! With no backend feature the library still builds, but [`gpu::GpuContext::new`] finds no
//! adapter: the app then supplies its own device through [`gpu::GpuContext::from_device`], from
//! a `wgpu` whose backends it enabled itself (Cargo unifies features, so a backend the app
//! enables on its own `wgpu` 30 dependency is this crate's too).

#![warn(missing_docs)]

// Benchmarks time with `Instant` and the blocking API, neither of which exists in the browser.
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod classifier;
pub mod classify;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod labels;
pub mod layout;
pub mod model;
pub mod plan;
pub mod preprocess;
pub mod tensor_file;
// `resnet tune` times kernels with the blocking API and keeps its table in the user's cache
// folder: neither exists in the browser, where plans use the heuristic (or a table the page
// hands over through `ClassifierOptions`).
#[cfg(not(target_arch = "wasm32"))]
pub mod tune;
pub mod winograd;

pub use classifier::{Classifier, ClassifierOptions, Model, Prediction};
pub use error::{Error, ErrorKind, Result};
/// The wgpu this crate is built on, so that an app opens its device with the same version.
pub use wgpu;
