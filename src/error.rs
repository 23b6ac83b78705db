//! The crate's one error type. Every message says what went wrong *and* what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong between a checkpoint file and a set of logits.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why the read failed.
        #[source]
        source: std::io::Error,
    },

    /// A file could not be written.
    #[error("cannot write {path}: {source}; check that its folder exists and is writable")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why the write failed.
        #[source]
        source: std::io::Error,
    },

    /// A file that is not valid safetensors.
    #[error(
        "{path} is not a valid safetensors file ({reason}); re-export it with `safetensors.torch.save_file` \
         or `safetensors.numpy.save_file` (see README, \"Exporting a checkpoint\")"
    )]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the safetensors reader found wrong.
        reason: String,
    },

    /// A tensor in a dtype this engine does not read.
    #[error(
        "tensor `{name}` has dtype {dtype}, which is not supported here (weights: F32, F16 or BF16; inputs: F32); convert with `.float()` / `.astype(np.float32)`"
    )]
    Dtype {
        /// The tensor's name.
        name: String,
        /// Its dtype, as the file names it.
        dtype: String,
    },

    /// A weight that is NaN or infinite.
    #[error(
        "tensor `{name}` holds {value} at index {index}: the checkpoint is corrupt or was saved from a \
         diverged model; re-export it from a model whose weights are finite"
    )]
    NonFiniteWeight {
        /// The tensor's name.
        name: String,
        /// The first bad element's index in the tensor's data.
        index: usize,
        /// Its value (widened to f32).
        value: f32,
    },

    /// An ONNX file that is not a ResNet graph this engine reads.
    #[error(
        "{path} is not an ONNX ResNet this engine can read: {problem}. It reads the ResNets of \
         the ONNX model zoo (resnet*-v1/-v2) and torch.onnx exports of torchvision and timm \
         ResNets; other graphs need a general ONNX runtime such as onnxruntime"
    )]
    Onnx {
        /// The file.
        path: PathBuf,
        /// The node and what was expected there.
        problem: String,
    },

    /// A configuration file (transformers' `config.json`, `preprocessor_config.json`) that
    /// is invalid or contradicts the weights.
    #[error("{path} does not fit the weights: {problem}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Every disagreement, or why it cannot be read.
        problem: String,
    },

    /// Logits with NaN or infinity; says where.
    #[error("the network's output is not finite: {0}")]
    NonFiniteOutput(String),

    /// Weights whose names or shapes do not fit the flavour's layout.
    #[error("the weights do not match the {flavour} layout:\n{}", problems.join("\n"))]
    WeightMismatch {
        /// The flavour the weights were read as.
        flavour: String,
        /// One line per missing, unexpected or misshapen tensor.
        problems: Vec<String>,
    },

    /// Weights whose tensor names match no flavour; says what was seen.
    #[error(
        "cannot tell which ResNet flavour these weights are ({0}); pass --flavour slim-v2|keras-v2|timm-v2|torchvision|keras-v1|hf"
    )]
    UnknownFlavour(String),

    /// A preset name that does not exist: the name and the known presets.
    #[error("unknown model `{0}`; known presets: {1}")]
    UnknownModel(String, String),

    /// Input the caller got wrong (shape, batch, NaN, an option out of range); says what.
    #[error("invalid input: {0}")]
    Input(String),

    /// An image file that cannot be decoded.
    #[error(
        "cannot decode {path} as an image: {reason}; supported formats are JPEG, PNG, WebP, BMP and GIF"
    )]
    Image {
        /// The file (or the name the caller gave its bytes).
        path: PathBuf,
        /// The decoder's reason.
        reason: String,
    },

    /// No wgpu adapter, or none that matches the choice; says which were looked for.
    #[cfg_attr(
        not(target_arch = "wasm32"),
        error(
            "no GPU adapter found{0}. Install a Vulkan driver: on Debian/Ubuntu `apt-get install mesa-vulkan-drivers` \
             (software rasteriser lavapipe), or your GPU vendor's driver; `resnet info` lists what wgpu sees"
        )
    )]
    #[cfg_attr(
        target_arch = "wasm32",
        error(
            "this browser gives no WebGPU adapter{0}. Open the page in a browser with WebGPU \
             (e.g. Chrome or Edge 113 or later) over https or localhost, with hardware acceleration \
             on; Chromium on Linux needs --enable-unsafe-webgpu --enable-features=Vulkan"
        )
    )]
    NoAdapter(String),

    /// The adapter refused the device (features or limits); wgpu's message.
    #[error("GPU device request failed: {0}")]
    Device(String),

    /// The device was lost (driver reset, removal); the reason wgpu gave.
    #[error(
        "the GPU device was lost ({0}); the work in flight is gone and this device cannot be used \
         again: create a new GpuContext / Classifier (or rerun the command)"
    )]
    DeviceLost(String),

    /// An image that was never run because the run stopped first (the device was lost);
    /// says why.
    #[error("not classified: {0}")]
    NotClassified(String),

    /// A wait on the GPU passed its deadline.
    #[error(
        "the GPU did not finish {what} within {seconds} s; it may be hung or overloaded. Raise the \
         deadline with RESNET_GPU_TIMEOUT=<seconds> (or GpuContext::set_timeout) if the work is \
         just slow"
    )]
    Timeout {
        /// The work that was waited for.
        what: String,
        /// The deadline that passed.
        seconds: f64,
    },

    /// Any other GPU failure (a wgpu validation or out-of-memory error, a failed map, a
    /// missing capability); says what.
    #[error("GPU error: {0}")]
    Gpu(String),

    /// A tuning file that cannot be used (corrupt, stale, another device's); callers warn
    /// and plan with the heuristic.
    #[error("{0}")]
    Tuning(String),

    /// The plan needs more than the device's limits allow (binding size, buffer size, …).
    #[error("the model does not fit the device: {0}")]
    DeviceLimits(String),

    /// A pipeline's shader that naga cannot translate for a backend (`plan::emit`, feature
    /// `emit-shaders`): wgpu would fail the same way creating that pipeline there.
    #[error(
        "cannot translate the pipeline ({pipeline}) to {format}: {problem}; this is a bug in \
         resnet-wgpu or naga: please report it with this message"
    )]
    Shader {
        /// Its shader module, entry point and override constants.
        pipeline: String,
        /// The target format (`spv`, `msl2.3`, `hlsl6.0`, ...).
        format: String,
        /// What failed: parsing, validation, the override constants or the writer.
        problem: String,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// What kind of failure an [`Error`] is, for front ends that map errors onto their own types
/// (the Python package raises `FileNotFoundError`, `ValueError`, `RuntimeError`, …). One match
/// here, so that a new variant cannot be added without deciding its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file to read does not exist.
    NotFound,
    /// A file could not be read or written for another reason (permissions, a folder, …).
    Io,
    /// The caller's data is wrong: a corrupt or mismatched checkpoint or image, an input of
    /// the wrong shape or with NaN, an unknown name, an output that overflowed.
    Input,
    /// The GPU or its driver: no adapter, a failed or lost device, a GPU error, limits.
    Gpu,
    /// A wait on the GPU passed its deadline.
    Timeout,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } | Error::Write { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                _ => ErrorKind::Io,
            },
            Error::Safetensors { .. }
            | Error::Onnx { .. }
            | Error::Config { .. }
            | Error::Dtype { .. }
            | Error::NonFiniteWeight { .. }
            | Error::NonFiniteOutput(_)
            | Error::WeightMismatch { .. }
            | Error::UnknownFlavour(_)
            | Error::Tuning(_)
            | Error::UnknownModel(..)
            | Error::Input(_)
            | Error::Image { .. } => ErrorKind::Input,
            Error::NoAdapter(_)
            | Error::Device(_)
            | Error::DeviceLost(_)
            | Error::NotClassified(_)
            | Error::Gpu(_)
            | Error::DeviceLimits(_)
            | Error::Shader { .. } => ErrorKind::Gpu,
            Error::Timeout { .. } => ErrorKind::Timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let io = |kind| Error::Io {
            path: "x".into(),
            source: std::io::Error::from(kind),
        };
        assert_eq!(io(std::io::ErrorKind::NotFound).kind(), ErrorKind::NotFound);
        assert_eq!(
            io(std::io::ErrorKind::PermissionDenied).kind(),
            ErrorKind::Io
        );
        assert_eq!(Error::Input("x".into()).kind(), ErrorKind::Input);
        assert_eq!(Error::NoAdapter(String::new()).kind(), ErrorKind::Gpu);
        let timeout = Error::Timeout {
            what: "x".into(),
            seconds: 1.0,
        };
        assert_eq!(timeout.kind(), ErrorKind::Timeout);
    }
}
