//! resnet-wgpu in the browser.
//!
//! On wasm32 this is the page's module (built by `web/build.sh` with wasm-bindgen): a
//! [`WebClassifier`] wraps the library's own [`Classifier`] on the browser's WebGPU adapter,
//! through the library's async API, so a file gets exactly what `resnet classify` computes:
//! the same decoding, preprocessing, network and top-k, and the same JSON.
//!
//! Natively it is the small static file server ([`serve`]) that `web/build.sh`'s output is
//! served with, locally and in the browser tests.

#[cfg(not(target_arch = "wasm32"))]
pub mod serve;

#[cfg(target_arch = "wasm32")]
mod page;

#[cfg(target_arch = "wasm32")]
pub use page::{WebClassifier, WebLogits};

use resnet_wgpu::Prediction;

/// One file's answer, as `resnet classify --json` prints it (`top` or `error`), plus the
/// milliseconds the page spent on it.
#[derive(Debug, serde::Serialize)]
pub struct FileResult {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<Vec<Prediction>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Decoding, preprocessing and the forward pass (wall clock).
    pub ms: f64,
}
