//! Fuzzing the front doors: seeded corruptions (byte flips, truncations, header edits) of valid
//! safetensors checkpoints and of images of every supported format. Nothing may panic, hang or
//! allocate without bound; each input must end in a clean error or a correct result:
//!
//! * a checkpoint that still loads must be exactly what the file says (every tensor exported
//!   back bit for bit), and must lower, plan and run on the CPU reference without a panic;
//! * an image that still decodes must preprocess to a finite tensor of the right size.
//!
//! Bounds: every iteration must finish within [`ITERATION_DEADLINE`] (a watchdog fails the
//! test, naming the input, if one does not) and may allocate at most [`ALLOC_BOUND`] beyond
//! what was live before it (a counting global allocator measures the peak).
//!
//! `RESNET_FUZZ_ITERATIONS` (default 300 per front door) and `RESNET_FUZZ_SEED` run longer or
//! other campaigns: `RESNET_FUZZ_ITERATIONS=20000 cargo test --release --test fuzz`.

mod common;

use common::alloc::{LIVE, PEAK};
use resnet_wgpu::graph::{LowerOptions, lower};
use resnet_wgpu::model::load::{LoadOptions, export_tensors, load_network_from_bytes};
use resnet_wgpu::model::{Flavour, Network};
use resnet_wgpu::plan::{Limits, plan};
use resnet_wgpu::preprocess::{Preprocess, decode_image};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: common::alloc::Counting = common::alloc::Counting;

/// Most bytes one corrupt input may make us allocate beyond what was live before it: the image
/// decoder's own limit (`MAX_DECODE_BYTES`, 512 MiB) plus room for the RGB copy and the
/// preprocessing of the largest image that limit admits.
const ALLOC_BOUND: usize = 1 << 30;
/// Longest one input may take (decoding, loading, lowering, planning, CPU forward pass).
const ITERATION_DEADLINE: Duration = Duration::from_secs(60);

/// The two tests measure the allocator's peak: they must not run at the same time.
static SERIAL: Mutex<()> = Mutex::new(());

fn iterations() -> usize {
    std::env::var("RESNET_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn seed() -> u64 {
    std::env::var("RESNET_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00f0_0d5e_ed00_0001)
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Runs `cases` inputs through `check`, each under the deadline and the allocation bound.
/// `make(i)` returns the input's description and bytes.
fn campaign(
    what: &str,
    make: impl Fn(&mut Rng, usize) -> (String, Vec<u8>) + Send + 'static,
    check: impl Fn(&[u8]) -> Outcome + Send + 'static,
) -> (usize, usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = iterations();
    let current: Arc<Mutex<(Instant, String)>> =
        Arc::new(Mutex::new((Instant::now(), String::new())));
    let done = Arc::new(AtomicBool::new(false));
    let (cur, fin) = (current.clone(), done.clone());
    let seed = seed();
    let worker = std::thread::spawn(move || {
        let mut rng = Rng(seed | 1);
        let (mut ok, mut errors) = (0, 0);
        for i in 0..n {
            let (desc, bytes) = make(&mut rng, i);
            *cur.lock().unwrap() = (Instant::now(), desc.clone());
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            match check(&bytes) {
                Outcome::Ok => ok += 1,
                Outcome::Error(msg) => {
                    assert!(!msg.trim().is_empty(), "{desc}: an empty error message");
                    errors += 1;
                }
            }
            let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
            assert!(
                peak <= ALLOC_BOUND,
                "{desc}: allocated {} MiB (bound {} MiB)",
                peak >> 20,
                ALLOC_BOUND >> 20
            );
        }
        fin.store(true, Ordering::Relaxed);
        (ok, errors)
    });
    // The watchdog: a hang fails the test instead of stalling CI.
    while !done.load(Ordering::Relaxed) && !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let (since, desc) = current.lock().unwrap().clone();
        assert!(
            since.elapsed() < ITERATION_DEADLINE,
            "{what}: `{desc}` has run for over {ITERATION_DEADLINE:?} (hang?)"
        );
    }
    let (ok, errors) = worker
        .join()
        .unwrap_or_else(|_| panic!("{what}: an input panicked (see above)"));
    eprintln!(
        "{what}: {n} corrupt inputs, seed {seed:#x}: {ok} still valid and correct, {errors} clean errors"
    );
    (ok, errors)
}

enum Outcome {
    Ok,
    Error(String),
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Applies one random corruption to `bytes`; `header` is the byte range worth targeting.
fn corrupt(rng: &mut Rng, bytes: &[u8], header: std::ops::Range<usize>) -> (String, Vec<u8>) {
    let mut b = bytes.to_vec();
    let in_header = |rng: &mut Rng| header.start + rng.below(header.len().max(1));
    match rng.below(5) {
        0 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = if rng.below(2) == 0 {
                    in_header(rng)
                } else {
                    rng.below(b.len())
                };
                b[at] ^= 1 << rng.below(8);
            }
            (format!("{flips} bit flips"), b)
        }
        1 => {
            let cut = rng.below(b.len());
            b.truncate(cut);
            (format!("truncated to {cut} bytes"), b)
        }
        2 => {
            // A byte set to an extreme value, where sizes and counts live.
            let at = in_header(rng);
            let v = *rng.pick(&[0x00, 0xff, 0x7f, 0x80, b'9']);
            b[at] = v;
            (format!("byte {at} set to {v:#x}"), b)
        }
        3 => {
            // A run of the header overwritten with garbage.
            let at = in_header(rng);
            let len = (1 + rng.below(16)).min(b.len() - at);
            for x in &mut b[at..at + len] {
                *x = rng.next() as u8;
            }
            (format!("{len} random bytes at {at}"), b)
        }
        _ => {
            // Bytes inserted or removed inside the header: everything after it shifts.
            let at = in_header(rng);
            if rng.below(2) == 0 {
                let n = 1 + rng.below(4);
                b.splice(at..at, std::iter::repeat_n(b'0', n));
                (format!("{n} bytes inserted at {at}"), b)
            } else {
                let n = (1 + rng.below(4)).min(b.len() - at);
                b.drain(at..at + n);
                (format!("{n} bytes removed at {at}"), b)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// safetensors checkpoints

/// Edits of the JSON header that keep the file well-formed as bytes: dtypes, shapes, offsets
/// and names changed the way a broken exporter or a hostile file would.
fn edit_header(rng: &mut Rng, bytes: &[u8]) -> (String, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let names: Vec<String> = header
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let name = rng.pick(&names).clone();
    let entry = header[&name].as_object_mut().unwrap();
    let desc = match rng.below(7) {
        0 => {
            let d = *rng.pick(&["F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "X"]);
            entry.insert("dtype".into(), d.into());
            format!("`{name}` dtype {d}")
        }
        1 => {
            let shape = entry["shape"].as_array_mut().unwrap();
            let big = serde_json::json!(*rng.pick(&[0u64, 1 << 20, 1 << 40, u64::MAX]));
            match shape.first_mut() {
                Some(d) => *d = big.clone(),
                None => shape.push(big.clone()),
            }
            format!("`{name}` first dim {big}")
        }
        2 => {
            let shape = entry["shape"].as_array_mut().unwrap();
            shape.push(serde_json::json!(1 + rng.below(3)));
            format!("`{name}` gains a dim")
        }
        3 => {
            let off = entry["data_offsets"].as_array_mut().unwrap();
            let v = *rng.pick(&[0u64, 7, 1 << 31, u64::MAX]);
            let i = rng.below(2);
            off[i] = serde_json::json!(v);
            format!("`{name}` data_offsets[{i}] = {v}")
        }
        4 => {
            let v = header.remove(&name).unwrap();
            let renamed = format!("{name}.renamed");
            header.insert(renamed.clone(), v);
            format!("`{name}` renamed `{renamed}`")
        }
        5 => {
            header.remove(&name);
            format!("`{name}` removed from the header")
        }
        _ => {
            let other = rng.pick(&names).clone();
            let v = header[&other].clone();
            header.insert(name.clone(), v);
            format!("`{name}` points at `{other}`'s data")
        }
    };
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    (desc, out)
}

/// A checkpoint that still loads is exactly the file: every tensor the network holds exports
/// back to the file's tensor of that name, bit for bit; and the network lowers, plans and runs
/// on the CPU reference without a panic.
fn check_checkpoint(bytes: &[u8]) -> Outcome {
    let net = match load_network_from_bytes(bytes, Path::new("fuzzed"), &LoadOptions::default()) {
        Ok(net) => net,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let st = safetensors::SafeTensors::deserialize(bytes).expect("it loaded");
    for (name, shape, data) in export_tensors(&net) {
        let view = st
            .tensor(&name)
            .unwrap_or_else(|_| panic!("the loaded network has `{name}`, the file does not"));
        let file = resnet_wgpu::tensor_file::float_data(&name, &view).unwrap();
        assert_eq!(shape, view.shape(), "`{name}`: shape");
        assert!(
            bits(&data) == bits(&file),
            "`{name}` loaded with other values than the file holds"
        );
    }
    run_small(&net);
    Outcome::Ok
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn run_small(net: &Network) {
    let graph = match lower(&net.arch, &net.params, 32, 32, &LowerOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            // Out-of-range values that folding overflows are refused, named.
            assert!(e.to_string().contains("non-finite"), "{e}");
            return;
        }
    };
    plan(&graph, 2, &Limits::unlimited()).expect("a small net plans");
    let x = vec![0.5f32; 2 * 32 * 32 * net.arch.in_channels];
    let out = resnet_wgpu::cpu::run_graph(&graph, 2, &x);
    assert!(out[graph.logits].is_some());
}

#[test]
fn corrupt_checkpoints_end_in_an_error_or_the_file_s_exact_network() {
    let bases: Vec<Vec<u8>> = [
        "torchvision_small_32x32",
        "keras_v2_small_32x32",
        "slim_v2_small_32x32",
        "keras_v1_small_32x32",
    ]
    .iter()
    .map(|c| std::fs::read(fixture(&format!("{c}.weights.safetensors"))).unwrap())
    .collect();
    for b in &bases {
        assert!(
            matches!(check_checkpoint(b), Outcome::Ok),
            "the base files load"
        );
    }
    let (ok, errors) = campaign(
        "safetensors",
        move |rng, i| {
            let base = &bases[i % bases.len()];
            let header_end = 8 + u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
            let (desc, bytes) = match rng.below(6) {
                0 | 1 => edit_header(rng, base),
                2 => {
                    // A weight that is NaN or infinite: refused at load, named.
                    let mut b = base.clone();
                    let at = header_end + 4 * rng.below((b.len() - header_end) / 4);
                    let v = *rng.pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
                    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    (format!("{v} written at byte {at}"), b)
                }
                _ => corrupt(rng, base, 0..header_end),
            };
            (format!("checkpoint {i} ({desc})"), bytes)
        },
        check_checkpoint,
    );
    assert!(
        errors > 0 && ok > 0,
        "{ok} ok, {errors} errors: both kinds expected"
    );
}

// ---------------------------------------------------------------------------------------------
// Images

/// Every supported format, encoded here from the fixture pictures (the `image` crate's own
/// encoders), plus the committed PNG/JPEG fixtures as they are.
fn image_bases() -> Vec<(String, Vec<u8>)> {
    use image::ImageFormat;
    let dir = fixture("preprocess");
    let mut out: Vec<(String, Vec<u8>)> = [
        "rgb_300x200.jpg",
        "gray16_80x60.png",
        "gray_64x48.png",
        "rgba_120x90.png",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
    .collect();
    let rgb = resnet_wgpu::preprocess::load_image(&dir.join("rgb_199x257.png")).unwrap();
    let small = image::imageops::thumbnail(&rgb, 61, 79);
    for (name, format) in [
        ("png", ImageFormat::Png),
        ("jpeg", ImageFormat::Jpeg),
        ("webp", ImageFormat::WebP),
        ("bmp", ImageFormat::Bmp),
        ("gif", ImageFormat::Gif),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(small.clone())
            .write_to(&mut bytes, format)
            .unwrap();
        out.push((format!("encoded 61x79 {name}"), bytes.into_inner()));
    }
    out
}

/// A decodable image must preprocess to a finite tensor of the recipe's size.
fn check_image(bytes: &[u8], recipe: &Preprocess) -> Outcome {
    let img = match decode_image(bytes, "fuzzed") {
        Ok(img) => img,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    match recipe.apply(&img) {
        Ok(x) => {
            let (h, w) = recipe.output_size();
            assert_eq!(x.len(), 3 * h * w);
            assert!(x.iter().all(|v| v.is_finite()), "a non-finite input value");
            Outcome::Ok
        }
        Err(e) => Outcome::Error(e.to_string()),
    }
}

#[test]
fn corrupt_images_end_in_an_error_or_a_finite_input() {
    let bases = image_bases();
    for (name, b) in &bases {
        let r = Flavour::Torchvision
            .preprocess()
            .with_overrides(Some(32), None, false);
        assert!(matches!(check_image(b, &r), Outcome::Ok), "{name} decodes");
    }
    // Small outputs keep each iteration fast; every flavour's resize path is used.
    let recipes: Vec<Preprocess> = Flavour::ALL
        .iter()
        .map(|&f| f.preprocess().with_overrides(Some(40), None, false))
        .collect();
    let names: Vec<String> = bases.iter().map(|b| b.0.clone()).collect();
    let (ok, errors) = campaign(
        "images",
        move |rng, i| {
            let (name, base) = &bases[i % bases.len()];
            // The first 64 bytes hold every format's dimensions and sizes.
            let (desc, mut bytes) = corrupt(rng, base, 0..base.len().min(64));
            // The recipe rides in the last byte (the campaign passes bytes only).
            bytes.push((i % Flavour::ALL.len()) as u8);
            (format!("image {i}: {name}, {desc}"), bytes)
        },
        move |bytes| {
            let (recipe, image) = bytes.split_last().unwrap();
            check_image(image, &recipes[usize::from(*recipe)])
        },
    );
    assert!(
        errors > 0 && ok > 0,
        "{ok} ok, {errors} errors over {names:?}: both kinds expected"
    );
}
