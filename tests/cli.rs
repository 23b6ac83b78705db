//! The `resnet` binary end to end: its outputs and its errors for bad input.

mod common;

use resnet_wgpu::tensor_file::{Tensor, read_tensor, write_tensors};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn resnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resnet"))
        .args(args)
        .output()
        .expect("run resnet")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fresh scratch directory per test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const CASE: &str = "torchvision_basic_small_32x32";

/// f32 logits against the framework's, relative to max(1, max|reference|): the golden
/// tests' tolerance (`tests/golden.rs`, measured worst 9.1e-7).
const REL_TOL: f64 = 1e-5;

/// Copies the case's checkpoint with `edit` applied to its (name, tensor) list.
fn edited_weights(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> PathBuf {
    let src = fixture(&format!("{CASE}.weights.safetensors"));
    let bytes = std::fs::read(&src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Tensor)> = st
        .tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == safetensors::Dtype::F32)
        .map(|(name, v)| {
            let data = resnet_wgpu::tensor_file::f32_data(&name, &v).unwrap();
            (
                name,
                Tensor {
                    shape: v.shape().to_vec(),
                    data,
                },
            )
        })
        .collect();
    edit(&mut tensors);
    let out = dir.join("edited.safetensors");
    write_tensors(&out, &tensors).unwrap();
    out
}

fn infer(weights: &Path, dir: &Path) -> Output {
    let input = fixture(&format!("{CASE}.io.safetensors"));
    let out = dir.join("out.safetensors");
    resnet(&[
        "infer",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ])
}

#[test]
fn infer_writes_framework_logits_and_features() {
    let dir = scratch("ok");
    let out = dir.join("out.safetensors");
    let io = fixture(&format!("{CASE}.io.safetensors"));
    let o = resnet(&[
        "infer",
        "--weights",
        fixture(&format!("{CASE}.weights.safetensors"))
            .to_str()
            .unwrap(),
        "--input",
        io.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--features",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("adapter"),
        "logs the adapter: {}",
        stderr(&o)
    );
    // The same names (logits and every map the framework saved), each the framework's.
    let names = |path: &Path| {
        let bytes = resnet_wgpu::tensor_file::read_file(path).unwrap();
        let st = resnet_wgpu::tensor_file::parse(path, &bytes).unwrap();
        let mut n: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| *n != "input")
            .map(str::to_string)
            .collect();
        n.sort();
        n
    };
    let want_names = names(&io);
    assert_eq!(names(&out), want_names);
    assert_eq!(want_names.len(), 8, "logits and 7 maps: {want_names:?}");
    for name in &want_names {
        let got = read_tensor(&out, name).unwrap();
        let want = read_tensor(&io, name).unwrap();
        assert_eq!(got.shape, want.shape, "{name}");
        // Tolerance as in tests/golden.rs: 1e-5 relative to max(1, max|reference|).
        common::assert_close(&got.data, &want.data, REL_TOL, name);
    }
}

#[test]
fn truncated_checkpoint_is_reported() {
    let dir = scratch("truncated");
    let bytes = std::fs::read(fixture(&format!("{CASE}.weights.safetensors"))).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = infer(&cut, &dir);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a valid safetensors file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_tensor_is_named() {
    let dir = scratch("missing");
    let w = edited_weights(&dir, |t| t.retain(|(n, _)| n != "layer2.0.conv1.weight"));
    let o = infer(&w, &dir);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("layer2.0.conv1.weight"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn wrong_shape_is_named() {
    let dir = scratch("shape");
    let w = edited_weights(&dir, |t| {
        let (_, x) = t
            .iter_mut()
            .find(|(n, _)| n == "layer3.1.bn1.running_var")
            .unwrap();
        x.data.push(1.0);
        x.shape[0] += 1;
    });
    let o = infer(&w, &dir);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("layer3.1.bn1.running_var"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn too_small_input_is_rejected() {
    let dir = scratch("small");
    let input = dir.join("small.safetensors");
    let t = Tensor {
        shape: vec![1, 3, 16, 16],
        data: vec![0.0; 3 * 16 * 16],
    };
    write_tensors(&input, &[("input".into(), t)]).unwrap();
    let o = resnet(&[
        "infer",
        "--weights",
        fixture(&format!("{CASE}.weights.safetensors"))
            .to_str()
            .unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.join("o.safetensors").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("below the minimum"), "{}", stderr(&o));
}

#[test]
fn plan_json_reports_the_memory_figures() {
    let o = resnet(&[
        "plan",
        "--model",
        "resnet_v2_152",
        "--batch",
        "32",
        "--size",
        "224",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let get = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} missing"));
    let (arena, naive, lb) = (
        get("arena_bytes"),
        get("naive_bytes"),
        get("lower_bound_bytes"),
    );
    assert!(get("weights_bytes") > 200 << 20);
    assert!(lb <= arena && arena as f64 <= 1.1 * lb as f64 && arena < naive);
    assert!(v["dispatches"].as_array().unwrap().len() > 150);
}

#[test]
fn plan_shows_the_kernel_choice_per_device() {
    let run = |batch: &str, extra: &[&str]| {
        let mut args = vec![
            "plan",
            "--model",
            "resnet_v2_50",
            "--batch",
            batch,
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = resnet(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let kernel = |name: &str| {
            let d = v["dispatches"].as_array().unwrap().iter();
            let d = d.clone().find(|d| d["name"] == name);
            d.unwrap_or_else(|| panic!("no dispatch {name}"))["kernel"]["describe"]
                .as_str()
                .unwrap()
                .to_string()
        };
        [
            "stem/conv",
            "stage1/unit1/conv2",
            "stage3/unit1/conv2",
            "stage4/unit1/conv2",
            "stage1/unit2/conv3",
            "stage3/unit6/conv2",
            "classifier",
        ]
        .map(kernel)
    };
    // lavapipe: the texture variant; Winograd F(4,3) on 56x56 3x3s, F(2,3) on 14x14; the
    // 7x7 3x3s direct at batch 1 (16 tiles: too few GEMM rows) and F(2,3) from batch 2;
    // stride-2 3x3s and 1x1s direct; the classifier in registers.
    let [stem, s1, s3, s4, one, strided, fc] = run("1", &["--software"]);
    assert!(stem.starts_with("texture 128x16 16px packed"), "{stem}");
    assert!(s1.starts_with("F(4,3) texture"), "{s1}");
    assert!(s3.starts_with("F(2,3) texture"), "{s3}");
    assert!(s4.starts_with("texture 56x16 7px"), "{s4}");
    assert!(one.starts_with("texture"), "{one}");
    assert!(strided.starts_with("texture 56x16 7px"), "{strided}");
    assert!(fc.starts_with("register"), "{fc}");
    let [_, _, _, s4, _, _, _] = run("2", &["--software"]);
    assert!(s4.starts_with("F(2,3)"), "{s4}");
    let [stem, s1, _, _, _, strided, fc] = run("1", &[]);
    assert!(stem.starts_with("shared"), "{stem}");
    assert!(s1.starts_with("F(4,3) shared"), "{s1}");
    // The stride-2 3x3 into 7x7 at batch 1: M 49 fills too few workgroups, K 2304 is deep,
    // so K is split across workgroups and reduced in a second pass.
    assert!(strided.starts_with("split-K 16 shared"), "{strided}");
    assert!(fc.starts_with("register"), "{fc}");
    // And what the plan computes with Winograd: fewer executed multiply-adds.
    let o = resnet(&["plan", "--model", "resnet_v2_50", "--batch", "8", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (macs, executed) = (
        v["macs_per_image"].as_u64().unwrap(),
        v["macs_executed_per_image"].as_u64().unwrap(),
    );
    assert!(executed < macs * 3 / 4, "{executed} of {macs}");
}

/// Every field, and the default step counts of the adapter it ran on: 1 + 3 on a software
/// adapter (which says so), 10 + 100 on a GPU.
#[test]
fn bench_json_has_every_field_and_the_adapters_defaults() {
    let o = resnet(&[
        "bench", "--model", "resnet18", "--size", "32", "--batch", "2", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "mean_s",
        "sd_s",
        "min_s",
        "max_s",
        "images_per_s",
        "gflops",
        "gpu_mean_s",
    ] {
        assert!(
            v[k].as_f64().is_some_and(|x| x > 0.0 || k == "sd_s"),
            "{k}: {v}"
        );
    }
    for k in ["flops_per_image", "weights_bytes", "arena_bytes"] {
        assert!(v[k].as_u64().is_some_and(|x| x > 0), "{k}");
    }
    let software = v["adapter"]["device_type"].as_str() == Some("Cpu");
    assert_eq!(
        stderr(&o).contains("note: software adapter"),
        software,
        "{}",
        stderr(&o)
    );
    let defaults = if software { (1, 3) } else { (10, 100) };
    assert_eq!(
        (v["warmup"].as_u64(), v["steps"].as_u64()),
        (Some(defaults.0), Some(defaults.1)),
        "{v}"
    );
    // Setup (process start to session ready) and the first (warm-up) batch are timed.
    let (setup, first) = (
        v["setup_s"].as_f64().unwrap(),
        v["first_batch_s"].as_f64().unwrap(),
    );
    assert!(setup.is_finite() && first.is_finite(), "{v}");
    assert!(setup > 0.0 && first > 0.0, "{v}");
    assert!(v["adapter"]["name"].is_string());
    // 2 x MACs of resnet18 at 32x32 (1/49 of 224's 1.814 GMACs, plus edge effects).
    let flops = v["flops_per_image"].as_u64().unwrap();
    assert!((70_000_000..80_000_000).contains(&flops), "{flops}");
}

#[test]
fn bench_sweep_csv_and_profile() {
    let o = resnet(&[
        "bench", "--model", "resnet18", "--size", "32", "--sweep", "1,3", "--csv", "--steps", "2",
        "--warmup", "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("batch,mean_s,sd_s"), "{out}");
    assert!(
        lines[1].starts_with("1,") && lines[2].starts_with("3,"),
        "{out}"
    );

    let o = resnet(&[
        "bench",
        "--model",
        "resnet18",
        "--size",
        "32",
        "--batch",
        "1",
        "--profile",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("per-step GPU time") && out.contains("stem/conv"),
        "{out}"
    );
}

#[test]
fn infer_accepts_nhwc_input_and_a_flavour_override() {
    let dir = scratch("nhwc");
    let io = fixture(&format!("{CASE}.io.safetensors"));
    let x = read_tensor(&io, "input").unwrap();
    let [n, c, h, w] = x.shape[..] else {
        panic!("4-D input")
    };
    let nhwc = resnet_wgpu::layout::nchw_to_nhwc(&x.data, n, c, h, w);
    let input = dir.join("nhwc.safetensors");
    let t = Tensor {
        shape: vec![n, h, w, c],
        data: nhwc,
    };
    write_tensors(&input, &[("input".into(), t)]).unwrap();
    let out = dir.join("out.safetensors");
    let weights = fixture(&format!("{CASE}.weights.safetensors"));
    let args = |extra: &[&str]| {
        let mut a = vec![
            "infer",
            "--weights",
            weights.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--layout",
            "nhwc",
        ];
        a.extend_from_slice(extra);
        resnet(&a)
    };
    let o = args(&["--flavour", "torchvision", "--batch", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = read_tensor(&out, "logits").unwrap();
    let want = read_tensor(&io, "logits").unwrap();
    common::assert_close(&got.data, &want.data, REL_TOL, "logits from NHWC input");
    // A wrong flavour override is a clear mismatch error, not a crash.
    let o = args(&["--flavour", "keras-v1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("keras-v1"), "{}", stderr(&o));
}

#[test]
fn bench_refuses_zero_steps() {
    let o = resnet(&[
        "bench", "--model", "resnet18", "--size", "32", "--steps", "0",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--steps 0"), "{}", stderr(&o));
}

#[test]
fn infer_into_a_missing_folder_says_it_cannot_write() {
    let dir = scratch("nofolder");
    let out = dir.join("no/such/folder/out.safetensors");
    let io = fixture(&format!("{CASE}.io.safetensors"));
    let o = resnet(&[
        "infer",
        "--weights",
        fixture(&format!("{CASE}.weights.safetensors"))
            .to_str()
            .unwrap(),
        "--input",
        io.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("cannot write")
            && e.contains("does not exist")
            && !e.contains("safetensors file"),
        "{e}"
    );
}

/// Sizes no device can run are errors or sub-batches, never a panic (the trial's report:
/// `plan --batch 100000000` panicked with "shape does not fit in u32").
#[test]
fn absurd_sizes_are_planned_or_refused_cleanly() {
    let o = resnet(&[
        "plan",
        "--model",
        "resnet_v2_152",
        "--batch",
        "100000000",
        "--size",
        "224",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["batch"].as_u64(), Some(100_000_000));
    let sub = v["sub_batch"].as_u64().unwrap();
    assert!(sub > 1 && sub < 100_000_000);
    assert!(v["arena_bytes"].as_u64().unwrap() <= 16 << 30);
    for (args, want) in [
        (&["plan", "--size", "100000", "--batch", "1"][..], "address"),
        (&["plan", "--size", "16", "--batch", "1"][..], "minimum"),
        (
            &[
                "bench",
                "--model",
                "resnet18",
                "--size",
                "32",
                "--batch",
                "100000000000000",
                "--steps",
                "1",
            ][..],
            "host memory",
        ),
    ] {
        let o = resnet(args);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn non_finite_weights_are_refused_with_the_tensor_and_index() {
    let dir = scratch("nan");
    let w = edited_weights(&dir, |t| {
        let (_, x) = t
            .iter_mut()
            .find(|(n, _)| n == "layer2.0.conv1.weight")
            .unwrap();
        x.data[37] = f32::NAN;
    });
    let o = infer(&w, &dir);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("layer2.0.conv1.weight") && e.contains("NaN") && e.contains("37"),
        "{e}"
    );
}

/// `--plan-for` and RESNET_DEVICE_PROFILE pick the kernel mix of another kind of device; a
/// value that does not parse is an error naming the variable, never silently ignored.
#[test]
fn plan_for_and_the_device_profile_variable() {
    let describe = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_resnet"));
        cmd.args(["plan", "--model", "resnet50", "--batch", "1"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr(&o),
        )
    };
    let (ok, software, _) = describe(&["--plan-for", "software"], &[]);
    assert!(ok && software.contains("texture"), "{software}");
    assert_eq!(describe(&["--software"], &[]).1, software);
    assert_eq!(
        describe(&[], &[("RESNET_DEVICE_PROFILE", "software")]).1,
        software
    );
    let (ok, gpu, _) = describe(&[], &[]);
    assert!(
        ok && gpu.contains("shared") && !gpu.contains("texture"),
        "{gpu}"
    );
    assert_eq!(
        describe(
            &["--plan-for", "gpu"],
            &[("RESNET_DEVICE_PROFILE", "software")]
        )
        .1,
        gpu
    );
    for (var, value) in [
        ("RESNET_DEVICE_PROFILE", "fast"),
        ("RESNET_CONV_VARIANT", "texturee"),
        ("RESNET_WINOGRAD", "f8"),
    ] {
        let (ok, _, err) = describe(&[], &[(var, value)]);
        assert!(
            !ok && err.contains(var) && err.contains(value),
            "{var}: {err}"
        );
    }
    let (ok, _, err) = describe(&["--plan-for", "tpu"], &[]);
    assert!(!ok && err.contains("gpu or software"), "{err}");

    // And on the adapter: lavapipe runs a GPU's plan.
    let o = resnet(&[
        "bench",
        "--model",
        "resnet18",
        "--size",
        "32",
        "--batch",
        "2",
        "--warmup",
        "0",
        "--steps",
        "1",
        "--plan-for",
        "gpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `infer` on each new format, with no flags: a transformers folder, an ONNX file, an F16 file.
/// The logits within the golden tolerance; stderr says what was loaded.
#[test]
fn infer_takes_transformers_onnx_and_half_files_without_flags() {
    let dir = scratch("formats");
    for (weights, io, says) in [
        (
            "hf/hf_resnet26_dfs_45x37",
            "hf/hf_resnet26_dfs_45x37.io.safetensors",
            "hf names",
        ),
        (
            "onnx/zoo_v2_bottleneck_opset7.onnx",
            "onnx/zoo_v2_bottleneck_opset7.io.safetensors",
            "ONNX opset 7",
        ),
        (
            "half/timm_v2_small_32x32_bf16.weights.safetensors",
            "half/timm_v2_small_32x32_bf16.io.safetensors",
            "timm-v2 names",
        ),
    ] {
        let out = dir.join("out.safetensors");
        let io = fixture(io);
        let o = resnet(&[
            "infer",
            "--weights",
            fixture(weights).to_str().unwrap(),
            "--input",
            io.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{weights}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{weights}: {}", stderr(&o));
        let got = read_tensor(&out, "logits").unwrap();
        let want = read_tensor(&io, "logits").unwrap();
        assert_eq!(got.shape, want.shape, "{weights}");
        common::assert_close(&got.data, &want.data, REL_TOL, weights);
    }
    // A bare transformers file: the note says what was assumed.
    let o = resnet(&[
        "infer",
        "--weights",
        fixture("hf/hf_resnet50_noconfig.safetensors")
            .to_str()
            .unwrap(),
        "--input",
        fixture("hf/hf_resnet50_64x64.io.safetensors")
            .to_str()
            .unwrap(),
        "--output",
        dir.join("out.safetensors").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("note: no config.json next to")
            && stderr(&o).contains("downsample_in_bottleneck false"),
        "{}",
        stderr(&o)
    );
    // --flavour makes no sense for a graph.
    let o = resnet(&[
        "infer",
        "--weights",
        fixture("onnx/zoo_v1_basic_opset7.onnx").to_str().unwrap(),
        "--flavour",
        "torchvision",
        "--input",
        fixture("onnx/zoo_v1_basic_opset7.io.safetensors")
            .to_str()
            .unwrap(),
        "--output",
        dir.join("out.safetensors").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("drop --flavour"), "{}", stderr(&o));
    // Not a ResNet: the node, its op and what was expected.
    let o = resnet(&[
        "infer",
        "--weights",
        fixture("onnx/not_a_resnet.onnx").to_str().unwrap(),
        "--input",
        fixture("onnx/zoo_v1_basic_opset7.io.safetensors")
            .to_str()
            .unwrap(),
        "--output",
        dir.join("out.safetensors").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("`sigmoid` (Sigmoid)") && stderr(&o).contains("expected MaxPool"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `classify` with a transformers folder prints the folder's own labels (id2label).
#[test]
fn classify_uses_a_transformers_folders_labels_and_processor() {
    let o = resnet(&[
        "classify",
        "--json",
        "--weights",
        fixture("hf/hf_resnet18_64x64").to_str().unwrap(),
        fixture("preprocess/rgb_199x257.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let top = v[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    let digits = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    for p in top {
        let (i, label) = (
            p["index"].as_u64().unwrap() as usize,
            p["label"].as_str().unwrap(),
        );
        assert_eq!(label, digits[i]);
    }
}

/// `resnet tune` stores its table in the cache folder; `plan --tuned` and `bench` take it
/// (the plan says so per conv); a corrupt or foreign file is ignored with a warning that says
/// what to do, never trusted; `plan --tuned` without a file says to run `tune` first.
#[test]
fn tune_stores_a_table_that_plans_take_and_bad_files_are_not_trusted() {
    let cache = scratch("tune-cache");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_resnet"))
            .args(args)
            .env("RESNET_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    let small = ["--model", "resnet18", "--size", "32", "--batch", "2"];
    let args = |cmd: &'static str, extra: &[&'static str]| {
        let mut a = vec![cmd];
        a.extend(small);
        a.extend(extra);
        a
    };
    let o = run(&args("plan", &["--plan-for", "software", "--tuned"]));
    assert!(
        !o.status.success() && stderr(&o).contains("run `resnet tune` first"),
        "{}",
        stderr(&o)
    );

    let o = run(&args("tune", &["--repeats", "1", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["shapes"].as_array().unwrap().len(), 12, "{v}");
    let file = std::path::PathBuf::from(v["file"].as_str().unwrap());
    assert!(
        file.starts_with(&cache) && file.exists(),
        "{}",
        file.display()
    );

    let o = run(&args("plan", &["--plan-for", "software", "--tuned"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let convs = table.lines().filter(|l| l.contains(" wg, ")).count();
    let tuned = table.lines().filter(|l| l.contains(" wg, tuned)")).count();
    assert!(convs >= 12 && tuned == convs, "{table}");
    // Without --tuned: the heuristic.
    let o = run(&args("plan", &["--plan-for", "software"]));
    assert!(String::from_utf8_lossy(&o.stdout).contains(" wg, heuristic)"));

    let bench = |extra: &[&'static str]| {
        let mut a = args("bench", &["--warmup", "0", "--steps", "1", "--json"]);
        a.extend(extra);
        run(&a)
    };
    let o = bench(&[]);
    assert!(
        o.status.success() && stderr(&o).contains("tuning: 12 tuned conv shapes"),
        "{}",
        stderr(&o)
    );
    let o = bench(&["--no-tuning"]);
    assert!(
        o.status.success() && !stderr(&o).contains("tuning:"),
        "{}",
        stderr(&o)
    );

    // A cache folder that cannot be written: the measurements are still printed, then the
    // command fails saying why.
    let blocker = cache.join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_resnet"))
        .args(args("tune", &["--repeats", "1"]))
        .env("RESNET_CACHE_DIR", blocker.join("cache"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("whole network"));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));

    // Corrupt, then another engine's: warned about, ignored, the run still succeeds.
    let good = std::fs::read_to_string(&file).unwrap();
    for (text, says) in [
        (good[..good.len() / 3].to_string(), "corrupt"),
        (
            good.replace("\"engine\": \"", "\"engine\": \"0.0.0-"),
            "measured for",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let o = bench(&[]);
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert!(
            err.contains("warning") && err.contains(says) && err.contains("resnet tune"),
            "{err}"
        );
        assert!(!err.contains("tuning: "), "{err}");
    }
}

/// `resnet info` lists the adapters wgpu sees with their limits: the one the tests run on is
/// there with the numbers wgpu reports for it; a backend with no adapter says how to get one.
#[test]
fn info_lists_the_adapter_and_its_limits() {
    let ctx = common::gpu();
    let o = resnet(&["info"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let summary = ctx.summary();
    let entry = out
        .split("\n[")
        .find(|e| e.contains(&summary.name) && e.contains(&summary.backend))
        .unwrap_or_else(|| panic!("no entry for {summary}:\n{out}"));
    let l = &ctx.limits;
    for (name, value) in [
        ("max_buffer_size", l.max_buffer_size),
        (
            "max_storage_buffer_binding_size",
            l.max_storage_buffer_binding_size,
        ),
        (
            "max_compute_workgroup_storage_size",
            u64::from(l.max_compute_workgroup_storage_size),
        ),
        (
            "max_compute_workgroups_per_dimension",
            u64::from(l.max_compute_workgroups_per_dimension),
        ),
    ] {
        let line = entry
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in:\n{entry}"));
        assert_eq!(
            line.split(':').nth(1).unwrap().trim(),
            value.to_string(),
            "{line}"
        );
    }
    assert!(entry.contains("features:"), "{entry}");
    // No Metal adapter on this machine: a clear line, not an empty output.
    if !cfg!(target_os = "macos") {
        let o = resnet(&["info", "--backend", "metal"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("no adapters found") && out.contains("driver"),
            "{out}"
        );
    }
}

/// `plan --tuned` without `--plan-for` plans the profile the adapter at hand resolves to (a
/// software one on lavapipe), the one `resnet tune` stored its table for: right after `tune`,
/// the same flags plan every conv whose shape the table holds with its tuned kernel.
#[test]
fn plan_tuned_takes_the_table_tune_stored_for_this_adapter() {
    let cache = scratch("plan-tuned-own-profile");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_resnet"))
            .args(args)
            .env("RESNET_CACHE_DIR", &cache)
            .env_remove("RESNET_DEVICE_PROFILE")
            .output()
            .unwrap()
    };
    let small = ["--model", "resnet18", "--size", "32", "--batch", "2"];
    let with = |cmd: &'static str, extra: &[&'static str]| {
        let mut a = vec![cmd];
        a.extend(small);
        a.extend(extra);
        a
    };
    let o = run(&with("tune", &["--repeats", "1", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Conv steps whose shape the stored table holds.
    let held: u64 = report["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["layers"].as_u64().unwrap())
        .sum();
    assert!(held >= 12, "{report}");

    let o = run(&with("plan", &["--tuned", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let origins: Vec<&str> = plan["dispatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["kernel"]["origin"].as_str())
        .collect();
    let tuned = origins.iter().filter(|o| **o == "tuned").count() as u64;
    assert_eq!(tuned, held, "{origins:?}");

    let o = run(&with("plan", &["--tuned"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    let tuned = table.lines().filter(|l| l.contains("tuned)")).count() as u64;
    assert_eq!(tuned, held, "{table}");
}

/// `resnet serve` runs the `resnet-serve` binary beside it with the same arguments and exit
/// status (here a stand-in script records them); without it, it says how to build it.
#[cfg(unix)]
#[test]
fn serve_runs_the_server_binary_beside_it_or_says_how_to_build_it() {
    let dir = scratch("serve");
    // Both executables are written by child processes: a file this test process held open for
    // writing could be inherited by another test's fork and make the exec fail ("text file
    // busy").
    let resnet = dir.join("resnet");
    let copied = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_resnet"))
        .arg(&resnet)
        .status()
        .unwrap();
    assert!(copied.success());
    let serve = |args: &[&str]| {
        Command::new(&resnet)
            .arg("serve")
            .args(args)
            .output()
            .unwrap()
    };
    let o = serve(&["--weights", "w.safetensors"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cargo build --release -p resnet-serve"),
        "{}",
        stderr(&o)
    );
    let server = dir.join("resnet-serve");
    let written = Command::new("sh")
        .arg("-c")
        .arg(r#"printf '#!/bin/sh\necho "args: $*"\nexit 7\n' > "$1" && chmod 755 "$1""#)
        .arg("sh")
        .arg(&server)
        .status()
        .unwrap();
    assert!(written.success());
    let o = serve(&["--weights", "w.safetensors", "--max-batch", "4", "--help"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "args: --weights w.safetensors --max-batch 4 --help"
    );
}

/// `resnet plan --emit-shaders FORMAT DIR` (issue 19): one file per distinct pipeline of the
/// plan, named by its key, in every format, for the GPU and software kernel mixes in f32 and
/// f16: the same files (stems) in each format, the plan's pipelines; every SPIR-V file passes
/// spirv-val (which this test needs: `apt-get install spirv-tools`). Bad formats and folders
/// are refused with a message, and a rerun overwrites the plan's files and nothing else.
#[test]
fn plan_emits_the_shader_of_each_pipeline_in_every_format() {
    let dir = scratch("emit-shaders");
    let plan = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_resnet"))
            .args([
                "plan", "--model", "resnet18", "--size", "64", "--batch", "4",
            ])
            .args(args)
            .env_remove("RESNET_DEVICE_PROFILE")
            .env_remove("RESNET_CONV_VARIANT")
            .env_remove("RESNET_WINOGRAD")
            .output()
            .unwrap()
    };
    // Files of `dir` by extension: their stems.
    let stems = |dir: &Path, ext: &str| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let mut counts = Vec::new();
    for plan_for in ["gpu", "software"] {
        for precision in ["f32", "f16"] {
            let what = format!("{plan_for} {precision}");
            let mix = ["--plan-for", plan_for, "--precision", precision];
            let o = plan(&[&mix[..], &["--json"]].concat());
            assert!(o.status.success(), "{what}: {}", stderr(&o));
            let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            // `entry{A=1,B=0}` is the file stem `entry.A=1.B=0`.
            let want: std::collections::BTreeSet<String> = json["pipelines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| {
                    let k = k
                        .as_str()
                        .unwrap()
                        .replace(['{', ','], ".")
                        .replace('}', "");
                    k.trim_end_matches('.').to_string()
                })
                .collect();
            assert!(want.len() >= 5, "{what}: {want:?}");
            for (format, ext) in [
                ("wgsl", "wgsl"),
                ("spv", "spv"),
                ("msl", "metal"),
                ("hlsl", "hlsl"),
            ] {
                let out = dir.join(format!("{plan_for}-{precision}"));
                let o =
                    plan(&[&mix[..], &["--emit-shaders", format, out.to_str().unwrap()]].concat());
                assert!(o.status.success(), "{what} {format}: {}", stderr(&o));
                assert!(
                    stderr(&o).contains(&format!("emit-shaders: {} {format}", want.len())),
                    "{}",
                    stderr(&o)
                );
                assert_eq!(
                    stems(&out, ext),
                    want,
                    "{what} {format}: files vs the plan's pipelines"
                );
                if format == "spv" {
                    for stem in &want {
                        let file = out.join(format!("{stem}.spv"));
                        common::spirv_val(&file)
                            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                    }
                }
            }
            counts.push((what, want.len()));
        }
    }
    eprintln!("pipelines per plan: {counts:?}");

    // Refused cleanly: an unknown format (nothing created), a folder that is a file or
    // under one, a missing DIR.
    let nothing = dir.join("never");
    let o = plan(&["--emit-shaders", "glsl", nothing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown shader format `glsl`")
            && stderr(&o).contains("wgsl, spv, msl or hlsl"),
        "{}",
        stderr(&o)
    );
    assert!(!nothing.exists());
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    for bad in [file.clone(), file.join("sub")] {
        let o = plan(&["--emit-shaders", "spv", bad.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot write") && !stderr(&o).contains("panicked"),
            "{}",
            stderr(&o)
        );
    }
    let o = plan(&["--emit-shaders", "spv"]);
    assert!(
        !o.status.success() && stderr(&o).contains("DIR"),
        "{}",
        stderr(&o)
    );

    // A rerun overwrites the plan's files and leaves the others alone.
    let out = dir.join("gpu-f32");
    // The max pool's file (its name carries the pipeline's constants, `FLAGS` among them).
    let stale = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("max_pool.") && name.ends_with(".wgsl")
        })
        .expect("the plan's max pool shader");
    std::fs::write(&stale, "stale").unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = plan(&[
        "--plan-for",
        "gpu",
        "--emit-shaders",
        "wgsl",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(&stale)
            .unwrap()
            .contains("fn max_pool")
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
