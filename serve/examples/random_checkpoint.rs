//! Writes a preset's seeded random weights as a safetensors checkpoint, so that a full-size
//! network can be served without a real one: the same weights `resnet bench --model PRESET
//! --seed SEED` times (serve/bench.sh serves resnet50 this way).
//!
//! ```sh
//! cargo run --release -p resnet-serve --example random_checkpoint -- resnet50 /tmp/resnet50.safetensors [SEED]
//! ```

use resnet_wgpu::bench::network_or_preset;
use resnet_wgpu::model::load::save_network;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (preset, out, seed) = match args.as_slice() {
        [p, o] => (p, o, Ok(0)),
        [p, o, s] => (p, o, s.parse::<u64>()),
        _ => {
            eprintln!("usage: random_checkpoint PRESET OUT.safetensors [SEED]");
            std::process::exit(2);
        }
    };
    let seed = seed.unwrap_or_else(|e| {
        eprintln!("error: SEED must be a non-negative integer: {e}");
        std::process::exit(2);
    });
    let written = network_or_preset(preset, None, seed)
        .and_then(|(_, net)| save_network(&net, Path::new(out)));
    if let Err(e) = written {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    eprintln!("{out}: {preset}, seed {seed}");
}
