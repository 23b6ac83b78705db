//! Peer comparison: ResNet-50 inference on burn's wgpu backend (Vulkan) against resnet-wgpu, on
//! the same adapter, input size, batch and input, in one process.
//!
//! Both sides are timed the same way: wall time of one batch from host input to host logits
//! (upload, every dispatch, read-back), after `--warmup` untimed batches. Weights are random
//! (speed does not depend on their values). burn runs in inference mode: no autodiff backend,
//! batch norm on running statistics; its defaults (kernel fusion, autotune) are on.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::wgpu::WgpuBackend;
use clap::Parser;
use resnet_wgpu::gpu::session::Session;
use resnet_wgpu::gpu::{AdapterChoice, GpuContext};
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::model::Arch;
use resnet_wgpu::model::random::{random_input, random_params};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "ResNet-50 images/s: burn (wgpu, Vulkan) vs resnet-wgpu, same adapter, same run")]
struct Args {
    /// Images per batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Input height and width.
    #[arg(long, default_value_t = 224)]
    size: usize,
    /// Untimed batches per engine and model (burn's autotune runs in the first one).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed batches per engine and model.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Seed of our random weights and of the shared input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Mean and sd of one engine's timed batches.
#[derive(Clone, Copy, Debug)]
struct Stats {
    mean: f64,
    sd: f64,
    images_per_s: f64,
}

impl Stats {
    fn new(durations: &[f64], batch: usize) -> Stats {
        let n = durations.len() as f64;
        let mean = durations.iter().sum::<f64>() / n;
        // As `resnet bench` (TF-slim's time_tensorflow_run): sd = sqrt(E[x^2] - E[x]^2).
        let var = (durations.iter().map(|x| x * x).sum::<f64>() / n - mean * mean).max(0.0);
        Stats {
            mean,
            sd: var.sqrt(),
            images_per_s: batch as f64 / mean,
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} ± {:.3} s/batch, {:.3} images/s",
            self.mean, self.sd, self.images_per_s
        )
    }
}

/// Runs `f` `warmup` times untimed, then `steps` times timed; `f` returns the logits' checksum.
fn time_batches(
    label: &str,
    warmup: usize,
    steps: usize,
    batch: usize,
    mut f: impl FnMut() -> f64,
) -> Stats {
    for i in 0..warmup {
        let t0 = Instant::now();
        let sum = f();
        eprintln!(
            "  {label}: warm-up {i}: {:.3} s (sum |logits| {sum:.4e})",
            t0.elapsed().as_secs_f64()
        );
    }
    let mut durations = Vec::with_capacity(steps);
    for i in 0..steps {
        let t0 = Instant::now();
        let sum = f();
        let d = t0.elapsed().as_secs_f64();
        eprintln!("  {label}: step {i}: {d:.3} s (sum |logits| {sum:.4e})");
        durations.push(d);
    }
    let s = Stats::new(&durations, batch);
    println!("{label}: {s}");
    s
}

// ---------------------------------------------------------------------------------------------
// ResNet-50, torchvision v1.5 structure, from burn::nn modules.

fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .init(device)
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).init(device)
}

#[derive(Module, Debug)]
struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

/// 1x1 → 3x3 (stride here: v1.5) → 1x1 (x4), projection shortcut when the shape changes.
#[derive(Module, Debug)]
struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    relu: Relu,
    downsample: Option<Downsample>,
}

impl Bottleneck {
    fn new(c_in: usize, planes: usize, stride: usize, device: &Device) -> Bottleneck {
        let c_out = planes * 4;
        Bottleneck {
            conv1: conv(c_in, planes, 1, 1, device),
            bn1: bn(planes, device),
            conv2: conv(planes, planes, 3, stride, device),
            bn2: bn(planes, device),
            conv3: conv(planes, c_out, 1, 1, device),
            bn3: bn(c_out, device),
            relu: Relu::new(),
            downsample: (stride != 1 || c_in != c_out).then(|| Downsample {
                conv: conv(c_in, c_out, 1, stride, device),
                bn: bn(c_out, device),
            }),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let y = self.relu.forward(self.bn1.forward(self.conv1.forward(x)));
        let y = self.relu.forward(self.bn2.forward(self.conv2.forward(y)));
        let y = self.bn3.forward(self.conv3.forward(y));
        self.relu.forward(y + identity)
    }
}

#[derive(Module, Debug)]
struct ResNet50 {
    conv1: Conv2d,
    bn1: BatchNorm,
    relu: Relu,
    maxpool: MaxPool2d,
    blocks: Vec<Bottleneck>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
}

impl ResNet50 {
    fn new(num_classes: usize, device: &Device) -> ResNet50 {
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (stage, (&n, planes)) in [3usize, 4, 6, 3]
            .iter()
            .zip([64, 128, 256, 512])
            .enumerate()
        {
            for i in 0..n {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                blocks.push(Bottleneck::new(c_in, planes, stride, device));
                c_in = planes * 4;
            }
        }
        ResNet50 {
            conv1: conv(3, 64, 7, 2, device),
            bn1: bn(64, device),
            relu: Relu::new(),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            blocks,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(c_in, num_classes).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.relu.forward(self.bn1.forward(self.conv1.forward(x)));
        let mut x = self.maxpool.forward(x);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self.avgpool.forward(x);
        self.fc.forward(x.flatten::<2>(1, 3))
    }
}

// ---------------------------------------------------------------------------------------------

fn run_ours(
    args: &Args,
    input: &[f32],
    models: &[&str],
) -> Result<Vec<Stats>, Box<dyn std::error::Error>> {
    let ctx = GpuContext::new(&AdapterChoice::default())?;
    println!("ours: adapter {}", ctx.summary());
    let mut out = Vec::new();
    for &model in models {
        let arch = Arch::preset(model)?;
        let params = random_params(&arch, args.seed);
        let graph = lower(
            &arch,
            &params,
            args.size,
            args.size,
            &LowerOptions::default(),
        )?;
        let session = Session::new(&ctx, graph, args.batch)?;
        let label = format!("ours {model}");
        let mut err = None;
        let s = time_batches(
            &label,
            args.warmup,
            args.steps,
            args.batch,
            || match session.run_nchw(input, args.batch) {
                Ok(o) => o.logits.iter().map(|v| v.abs() as f64).sum(),
                Err(e) => {
                    err.get_or_insert(e);
                    f64::NAN
                }
            },
        );
        if let Some(e) = err {
            return Err(e.into());
        }
        out.push(s);
    }
    Ok(out)
}

fn run_burn(args: &Args, input: &[f32]) -> Result<Stats, Box<dyn std::error::Error>> {
    let (device, setup) = Device::wgpu_options()
        .graphics_api(WgpuBackend::Vulkan)
        .init_with_setup()?;
    let info = setup.adapter.get_info();
    println!(
        "burn: adapter {} ({:?}, {:?}, driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    let model = ResNet50::new(1000, &device);
    let shape = [args.batch, 3, args.size, args.size];
    let mut dtype = None;
    let s = time_batches("burn resnet50", args.warmup, args.steps, args.batch, || {
        let x = Tensor::<4>::from_data(TensorData::new(input.to_vec(), shape), &device);
        let logits = model.forward(x).into_data();
        dtype.get_or_insert(logits.dtype());
        match logits.as_slice::<f32>() {
            Ok(v) => v.iter().map(|v| v.abs() as f64).sum(),
            Err(_) => f64::NAN,
        }
    });
    if dtype != Some(DType::F32) {
        return Err(format!("burn computed in {dtype:?}, not f32").into());
    }
    Ok(s)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.batch == 0 || args.steps == 0 || args.size == 0 {
        return Err("--batch, --size and --steps must be at least 1".into());
    }
    println!(
        "ResNet-50, batch {}, {}x{}, warm-up {}, {} timed batches; burn {}, resnet-wgpu {}",
        args.batch,
        args.size,
        args.size,
        args.warmup,
        args.steps,
        env!("BURN_VERSION"),
        env!("CARGO_PKG_VERSION"),
    );
    let input = random_input(args.batch * 3 * args.size * args.size, args.seed ^ 0x5EED);
    let models = ["resnet_v2_50", "resnet50"];
    // Ours first, then burn; our context and sessions are dropped before burn starts.
    let ours = run_ours(&args, &input, &models)?;
    let burn = run_burn(&args, &input)?;
    println!();
    println!("burn resnet50 (torchvision v1.5): {burn}");
    for (model, s) in models.iter().zip(&ours) {
        println!(
            "ours {model}: {s}  ratio (ours/burn) {:.2}",
            s.images_per_s / burn.images_per_s
        );
    }
    Ok(())
}
