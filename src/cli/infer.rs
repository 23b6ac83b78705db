//! `resnet infer`: checkpoint + preprocessed input tensor -> logits (and feature maps).

use super::GpuArgs;
use clap::{Args, ValueEnum};
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::gpu::session::{Session, SessionOptions};
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::plan::Precision;
use resnet_wgpu::tensor_file::{Tensor, read_tensor, write_tensors};
use resnet_wgpu::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Layout {
    Nchw,
    Nhwc,
}

#[derive(Args, Debug)]
pub struct InferArgs {
    /// Checkpoint: safetensors (F32/F16/BF16) in any flavour's own names and layouts, a
    /// transformers hub folder or an ONNX file.
    #[arg(long)]
    weights: PathBuf,
    /// safetensors file with tensor `input`: float32, already preprocessed.
    #[arg(long)]
    input: PathBuf,
    /// Where to write `logits` [N, classes] (and `feat/*` with --features).
    #[arg(long)]
    output: PathBuf,
    /// Layout of `input`.
    #[arg(long, value_enum, default_value_t = Layout::Nchw)]
    layout: Layout,
    /// Override the flavour inferred from the tensor names
    /// (slim-v2, keras-v2, timm-v2, torchvision, keras-v1, hf; not for ONNX files).
    #[arg(long)]
    flavour: Option<String>,
    /// Also write the intermediate maps as NCHW float32 tensors feat/stem_conv … feat/pooled.
    #[arg(long)]
    features: bool,
    /// Most images per GPU submission (default: the whole input, split further only if the
    /// device's buffer limits require it).
    #[arg(long)]
    batch: Option<usize>,
    /// Storage precision of activations and weights: f32, or f16 (half the bytes; f32
    /// arithmetic, f32 input and logits).
    #[arg(long, default_value = "f32", value_parser = super::parse_precision)]
    precision: Precision,
    #[command(flatten)]
    gpu: GpuArgs,
}

pub fn run(args: InferArgs) -> Result<()> {
    check_writable(&args.output)?;
    let net = super::load_model(&args.weights, args.flavour.as_deref())?.network;
    let input = read_tensor(&args.input, "input")?;
    let [n, c, h, w] = match (input.shape.as_slice(), args.layout) {
        (&[n, c, h, w], Layout::Nchw) => [n, c, h, w],
        (&[n, h, w, c], Layout::Nhwc) => [n, c, h, w],
        (s, l) => {
            return Err(Error::Input(format!(
                "`input` must be 4-D ({l:?}), got shape {s:?}"
            )));
        }
    };
    if c != net.arch.in_channels {
        return Err(Error::Input(format!(
            "`input` has {c} channels but the model takes {} (is --layout right?)",
            net.arch.in_channels
        )));
    }
    let graph = lower(
        &net.arch,
        &net.params,
        h,
        w,
        &LowerOptions {
            features: args.features,
        },
    )?;
    let ctx = GpuContext::new(&args.gpu.choice())?;
    eprintln!("adapter: {}", ctx.summary());
    let batch = args.batch.unwrap_or(n).clamp(1, n.max(1));
    let session = Session::with_options(
        &ctx,
        graph,
        batch,
        &SessionOptions {
            precision: args.precision,
            profile: args.gpu.profile()?,
            tuning: args.gpu.tuning(&ctx, args.precision)?,
            ..Default::default()
        },
    )?;
    let out = match args.layout {
        Layout::Nchw => session.run_nchw(&input.data, n)?,
        Layout::Nhwc => session.run_nhwc(&input.data, n)?,
    };
    let mut tensors = vec![(
        "logits".to_string(),
        Tensor {
            shape: vec![n, out.classes],
            data: out.logits,
        },
    )];
    for f in out.features {
        let shape = if f.name == "feat/pooled" {
            vec![n, f.shape[1]]
        } else {
            f.shape.to_vec()
        };
        tensors.push((
            f.name,
            Tensor {
                shape,
                data: f.data,
            },
        ));
    }
    let bad = tensors
        .iter()
        .find_map(|(name, t)| Some((name, t.data.iter().position(|v| !v.is_finite())?)));
    write_tensors(&args.output, &tensors)?;
    if let Some((name, i)) = bad {
        return Err(Error::NonFiniteOutput(format!(
            "`{name}` holds a NaN or infinity at index {i} (written to {} anyway); the input or \
             the weights overflow float32",
            args.output.display()
        )));
    }
    eprintln!(
        "wrote {} ({n} x {} logits)",
        args.output.display(),
        session.graph().classes()
    );
    Ok(())
}

/// Fails early, before minutes of GPU work, if `path` cannot be created: its folder must exist.
fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        return Ok(());
    }
    Err(Error::Write {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("the folder {} does not exist", dir.display()),
        ),
    })
}
