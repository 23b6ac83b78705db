//! GPU execution: adapter/device selection ([`context`]), one small wrapper per kernel family
//! ([`kernels`], shaders in `shaders/*.wgsl`), and the session that owns every buffer, bind
//! group and pipeline of a plan ([`session`]).

pub mod context;
pub mod kernels;
pub mod session;
pub mod timing;

pub use context::{AdapterChoice, Backend, GpuContext};

/// One recorded compute dispatch: created once when a session is built, then replayed by every
/// forward pass.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub label: String,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

impl Dispatch {
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }
}
