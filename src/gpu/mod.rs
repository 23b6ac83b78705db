//! GPU execution: adapter/device selection ([`context`]), one small wrapper per kernel family
//! ([`kernels`], shaders in `shaders/*.wgsl`), and the session that owns every buffer, bind
//! group and pipeline of a plan ([`session`]).

mod callback;
pub mod context;
pub mod kernels;
pub mod session;
pub mod timing;

pub use context::{AdapterChoice, Backend, GpuContext};

/// Locks `m`, poisoned or not: the GPU side's locks guard caches and `Option`s whose every
/// update is a single call, so a panic elsewhere while one was held leaves the data whole.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
pub use kernels::texture::TextureCopy;

/// One recorded compute dispatch: a plan [`Launch`](crate::plan::Launch) with its GPU objects,
/// created once when a session is built, then replayed by every forward pass.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// The dispatch's label (its op and kernel), for profiles and wgpu's messages.
    pub label: String,
    /// The plan step it belongs to.
    pub step: usize,
    /// The key the pipeline was created from.
    pub key: crate::plan::PipelineKey,
    /// The compute pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Its bindings.
    pub bind_group: wgpu::BindGroup,
    /// The workgroup grid (x, y, z).
    pub workgroups: [u32; 3],
    /// A texture copy that must run first, outside compute passes: the texture conv
    /// variant's input staging.
    pub copy: Option<TextureCopy>,
}

impl Dispatch {
    /// Records the dispatch into a pass; its copy must already be recorded
    /// ([`encode_sequence`] does both).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }
}

/// Submits one empty dispatch (a zero grid: no invocation runs, nothing is read or written)
/// of each distinct pipeline in `dispatches`, with the first bind group that uses it. A
/// driver that compiles a pipeline at its first dispatch rather than at its creation
/// (lavapipe: LLVM, 0.1-0.9 s per pipeline, on its queue thread) then compiles them all now,
/// for exactly the resources the real dispatches bind (its compiled variant depends on the
/// bound textures' formats), while the caller's thread goes on: one submission, because
/// lavapipe returns from a submission only once the one before it has run. Elsewhere it is a
/// no-op (wgpu's Metal backend drops empty dispatches).
pub fn start_compiles<'a>(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dispatches: impl IntoIterator<Item = &'a Dispatch>,
) {
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("start the pipelines' compiles"),
    });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("empty dispatches"),
            timestamp_writes: None,
        });
        let mut seen = std::collections::HashSet::new();
        for d in dispatches {
            if seen.insert(&d.key) {
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(0, 0, 0);
            }
        }
    }
    queue.submit([encoder.finish()]);
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
        if let Some(copy) = dispatches.get(start).and_then(|d| d.copy.as_ref()) {
            copy.encode(encoder);
        }
        // This pass runs up to the next dispatch that needs a copy first.
        let end = (start + 1..dispatches.len())
            .find(|&i| dispatches[i].copy.is_some())
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
