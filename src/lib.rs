//! ResNet inference as WGSL compute shaders on wgpu.
//!
//! One image's path from file to logits, module by module:
//! [`model`] (the network description and its weights, loaded from safetensors) →
//! [`graph`] (lowered to fused ops with batch norm folded) → [`plan`] (ordered dispatches and a
//! shared memory arena, pure data) → [`gpu`] (pipelines, bind groups and buffers created once;
//! a forward pass uploads, submits and reads back). [`cpu`] is the naive reference for all of it.

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
pub mod tune;
pub mod winograd;

pub use classifier::{Classifier, ClassifierOptions, Model, Prediction};
pub use error::{Error, ErrorKind, Result};
