//! ResNet inference as WGSL compute shaders on wgpu.
//!
//! One image's path from file to logits, module by module:
//! [`model`] (the network description and its weights, loaded from safetensors) →
//! [`graph`] (lowered to fused ops with batch norm folded) → [`plan`] (ordered dispatches and a
//! shared memory arena, pure data) → [`gpu`] (pipelines, bind groups and buffers created once;
//! a forward pass uploads, submits and reads back). [`cpu`] is the naive reference for all of it.

// Benchmarks time with `Instant` and the blocking API, neither of which exists in the browser.
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod classifier;
pub mod cpu;
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
