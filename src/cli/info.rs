//! `resnet info`: what wgpu sees.

use super::GpuArgs;
use clap::Args;
use resnet_wgpu::Result;
use resnet_wgpu::gpu::context::{AdapterSummary, list_adapters};

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Restrict to one backend.
    #[command(flatten)]
    gpu: GpuArgs,
    /// Write the description of the adapter a session picks (with --backend / --adapter) as
    /// JSON: what `resnet plan --device FILE` plans for, on any machine.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    if args.json {
        let ctx = resnet_wgpu::gpu::GpuContext::new(&args.gpu.choice())?;
        let text = serde_json::to_string_pretty(&ctx.description()).expect("json");
        println!("{text}");
        return Ok(());
    }
    let adapters = list_adapters(args.gpu.backend);
    if adapters.is_empty() {
        println!(
            "no adapters found. Install a Vulkan driver (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`) \
             or your GPU vendor's driver."
        );
        return Ok(());
    }
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let l = a.limits();
        println!("[{i}] {}", AdapterSummary::from(&info));
        println!(
            "    max_buffer_size:                      {}",
            l.max_buffer_size
        );
        println!(
            "    max_storage_buffer_binding_size:      {}",
            l.max_storage_buffer_binding_size
        );
        println!(
            "    min_storage_buffer_offset_alignment:  {}",
            l.min_storage_buffer_offset_alignment
        );
        println!(
            "    max_compute_workgroup_storage_size:   {}",
            l.max_compute_workgroup_storage_size
        );
        println!(
            "    max_compute_invocations_per_workgroup: {}",
            l.max_compute_invocations_per_workgroup
        );
        println!(
            "    max_compute_workgroup_size:           {}x{}x{}",
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_workgroup_size_z
        );
        println!(
            "    max_compute_workgroups_per_dimension: {}",
            l.max_compute_workgroups_per_dimension
        );
        println!("    features: {:?}", a.features());
    }
    Ok(())
}
