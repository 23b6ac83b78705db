//! GPU execution: adapter/device selection ([`context`]), one small wrapper per kernel family
//! ([`kernels`], shaders in `shaders/*.wgsl`), and the session that owns every buffer, bind
//! group and pipeline of a plan ([`session`]).

mod callback;
pub mod context;
pub mod kernels;
pub mod session;
pub mod timing;

pub use context::{AdapterChoice, Backend, GpuContext};
pub use kernels::texture::TextureCopy;

/// One recorded compute dispatch: created once when a session is built, then replayed by every
/// forward pass.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// The dispatch's label (its op and kernel), for profiles and wgpu's messages.
    pub label: String,
    /// The compute pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Its bindings.
    pub bind_group: wgpu::BindGroup,
    /// The workgroup grid (x, y, z).
    pub workgroups: [u32; 3],
    /// Work that must run first: the texture conv variant's input staging.
    pub stage: Option<Stage>,
}

/// How a texture conv's input gets into its texture.
#[derive(Clone, Debug)]
pub enum Stage {
    /// A buffer-to-texture copy, recorded outside compute passes (cin % 4 == 0).
    Copy(TextureCopy),
    /// A packing dispatch in the same pass (cin % 4 != 0: channels padded to 4).
    Pack(Box<Dispatch>),
}

impl Dispatch {
    fn copy(&self) -> Option<&TextureCopy> {
        match &self.stage {
            Some(Stage::Copy(c)) => Some(c),
            _ => None,
        }
    }

    /// Records the dispatch (after its packing dispatch, if any) into a pass; a staging copy
    /// must already be recorded ([`encode_sequence`] does both).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Some(Stage::Pack(pack)) = &self.stage {
            pack.encode(pass);
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }
}

/// Records `dispatches` in order into as few compute passes as their staging copies allow (a
/// copy ends the current pass). `timestamps`: a query set and the indices to write at the
/// start of the first pass and the end of the last.
pub fn encode_sequence(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    dispatches: &[Dispatch],
    timestamps: Option<(&wgpu::QuerySet, u32, u32)>,
) {
    let mut start = 0;
    loop {
        if let Some(copy) = dispatches.get(start).and_then(Dispatch::copy) {
            copy.encode(encoder);
        }
        // This pass runs up to the next dispatch that needs a copy first.
        let end = (start + 1..dispatches.len())
            .find(|&i| dispatches[i].copy().is_some())
            .unwrap_or(dispatches.len());
        let last = end >= dispatches.len();
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            // Passes between the first and the last write no timestamps.
            timestamp_writes: timestamps.filter(|_| start == 0 || last).map(
                |(set, begin, finish)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: (start == 0).then_some(begin),
                    end_of_pass_write_index: last.then_some(finish),
                },
            ),
        });
        for d in &dispatches[start..end] {
            d.encode(&mut pass);
        }
        drop(pass);
        if last {
            break;
        }
        start = end;
    }
}
