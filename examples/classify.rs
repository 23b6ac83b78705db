//! Classify one image with the library: `cargo run --release --example classify -- W.safetensors IMAGE`.

use resnet_wgpu::{Classifier, ClassifierOptions, Model, preprocess::load_image};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(weights), Some(image)) = (args.next(), args.next()) else {
        return Err("usage: classify WEIGHTS.safetensors IMAGE".into());
    };
    let model = Model::load(&weights)?;
    let classifier = Classifier::new(&model, &ClassifierOptions::default())?;
    let image = load_image(image.as_ref())?;
    for p in &classifier.classify(&[image], 5)?[0] {
        println!("{:>6.2}%  {}", 100.0 * p.probability, p.label);
    }
    Ok(())
}
