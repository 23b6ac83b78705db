//! Helpers shared by the integration tests (`mod common;` in each test file).
//!
//! Every numeric comparison goes through [`rel_err`] / [`abs_err`]: a plain
//! `fold(0.0, |m, d| m.max(d))` would skip NaN (`f32::max` returns the other operand), so an
//! all-NaN output would pass. Here a NaN or an infinity on either side, or a length mismatch,
//! is an error, never a small difference.

#![allow(dead_code)] // each test binary uses its own subset

#[cfg(not(target_arch = "wasm32"))]
pub mod alloc;
#[cfg(not(target_arch = "wasm32"))]
pub mod nets;

/// Largest `|got - want|` divided by `max(1, max |want|)`, computed in f64.
///
/// `Err` (saying where) if the lengths differ, if either side is empty, or if any element of
/// either side is NaN or infinite.
pub fn rel_err(got: &[f32], want: &[f32]) -> Result<f64, String> {
    let (max_abs, _) = diff(got, want)?;
    let scale = want.iter().fold(1.0f64, |m, &v| m.max(f64::from(v).abs()));
    Ok(max_abs / scale)
}

/// Largest `|got - want|` (absolute), with the same checks as [`rel_err`].
pub fn abs_err(got: &[f32], want: &[f32]) -> Result<f64, String> {
    Ok(diff(got, want)?.0)
}

/// `(max |got - want|, index of it)` after checking lengths and finiteness.
fn diff(got: &[f32], want: &[f32]) -> Result<(f64, usize), String> {
    if got.len() != want.len() {
        return Err(format!(
            "length mismatch: got {} values, want {}",
            got.len(),
            want.len()
        ));
    }
    if got.is_empty() {
        return Err("nothing to compare: both sides are empty".into());
    }
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if !w.is_finite() {
            return Err(format!("the reference holds {w} at index {i}"));
        }
        if !g.is_finite() {
            return Err(format!("got {g} at index {i} (want {w})"));
        }
        let d = (f64::from(g) - f64::from(w)).abs();
        if d > worst.0 {
            worst = (d, i);
        }
    }
    Ok(worst)
}

/// Panics unless `rel_err(got, want) <= tol`; the message names `what`.
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f32], tol: f64, what: &str) -> f64 {
    match rel_err(got, want) {
        Ok(e) if e <= tol => e,
        Ok(e) => panic!("{what}: relative error {e:.3e} exceeds {tol:e}"),
        Err(why) => panic!("{what}: {why}"),
    }
}

/// Panics unless `abs_err(got, want) <= tol`.
#[track_caller]
pub fn assert_close_abs(got: &[f32], want: &[f32], tol: f64, what: &str) -> f64 {
    match abs_err(got, want) {
        Ok(e) if e <= tol => e,
        Ok(e) => panic!("{what}: max |difference| {e:.3e} exceeds {tol:e}"),
        Err(why) => panic!("{what}: {why}"),
    }
}

/// The wgpu adapter the GPU tests run on; without one they fail (never skip), saying how to
/// install one. (Native: the browser tests, `web/tests`, open theirs asynchronously.)
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu() -> resnet_wgpu::gpu::GpuContext {
    resnet_wgpu::gpu::GpuContext::new(&resnet_wgpu::gpu::AdapterChoice::default()).unwrap_or_else(
        |e| {
            panic!(
                "{e}\nGPU tests need a wgpu adapter: on a machine without a GPU install Mesa's \
                 software Vulkan driver (`apt-get install mesa-vulkan-drivers`; see .ci/run)"
            )
        },
    )
}

/// The CPU reference's logits and feature maps (NCHW, by name) of `graph` on an NCHW `input`
/// of `shape` `[n, c, h, w]`: what the golden and format tests compare with the frameworks.
pub fn cpu_logits_and_maps(
    graph: &resnet_wgpu::graph::Graph,
    input: &[f32],
    shape: &[usize],
) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
    use resnet_wgpu::layout::{nchw_to_nhwc, nhwc_to_nchw};
    let [n, c, h, w] = shape[..] else {
        panic!("an NCHW input has 4 dimensions, not {shape:?}")
    };
    let all = resnet_wgpu::cpu::run_graph(graph, n, &nchw_to_nhwc(input, n, c, h, w));
    let maps = graph
        .features
        .iter()
        .map(|(name, t)| {
            let info = &graph.tensors[*t];
            let nhwc = all[*t].as_ref().expect("feature computed");
            (name.clone(), nhwc_to_nchw(nhwc, n, info.h, info.w, info.c))
        })
        .collect();
    (all[graph.logits].clone().expect("logits"), maps)
}

/// `spirv-val --target-env vulkan1.1 FILE`: `Err` with its message where the module is
/// invalid. Panics, saying how to install it, where spirv-val is missing: the SPIR-V checks
/// fail without it, never skip.
#[cfg(not(target_arch = "wasm32"))]
pub fn spirv_val(file: &std::path::Path) -> Result<(), String> {
    let out = std::process::Command::new("spirv-val")
        .args(["--target-env", "vulkan1.1"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run spirv-val ({e}): the SPIR-V checks need SPIRV-Tools' validator \
                 (`apt-get install spirv-tools` on Debian and Ubuntu, as .ci/run does; or the \
                 Vulkan SDK)"
            )
        });
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
