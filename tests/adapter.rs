//! The GPU tests must never pass by skipping: without an adapter this fails and says how to
//! install one.

use resnet_wgpu::gpu::{AdapterChoice, GpuContext};

#[test]
fn an_adapter_is_available() {
    let ctx = GpuContext::new(&AdapterChoice::default()).unwrap_or_else(|e| {
        panic!(
            "{e}\nGPU tests need a wgpu adapter. On a machine without a GPU install Mesa's software \
             Vulkan driver: `apt-get install mesa-vulkan-drivers` (Debian 12: prefer the \
             bookworm-backports version, see .ci/run)"
        )
    });
    eprintln!("adapter: {}", ctx.summary());
    // The point of requesting the adapter's limits: wgpu's defaults would cap us at 16 KiB.
    assert!(ctx.limits.max_compute_workgroup_storage_size >= 16384);
    assert!(ctx.limits.max_storage_buffer_binding_size >= 128 << 20);
}
