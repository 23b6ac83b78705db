//! GPU timestamps around the forward pass, or around every dispatch (`bench --profile`).

use super::GpuContext;
use super::callback::Callback;
use crate::error::{Error, Result};

/// What to time in a forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// No timing.
    Off,
    /// One pair of timestamps around the whole pass.
    Whole,
    /// A compute pass per dispatch, each with its own timestamps.
    PerDispatch,
}

/// Seconds measured on the GPU's clock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    /// Whole pass(es), summed over sub-batches.
    pub gpu_seconds: f64,
    /// Per dispatch in graph op order, summed over sub-batches (empty unless
    /// [`Timing::PerDispatch`]).
    pub per_dispatch: Vec<f64>,
}

/// A query set with its resolve and read-back buffers, sized for `pairs` begin/end pairs.
pub(crate) struct Timer {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    pairs: u32,
}

impl Timer {
    pub(crate) fn new(device: &wgpu::Device, pairs: u32) -> Timer {
        let bytes = u64::from(pairs) * 2 * 8;
        Timer {
            query_set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: pairs * 2,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp read-back"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            pairs,
        }
    }

    pub(crate) fn pairs(&self) -> u32 {
        self.pairs
    }

    /// The query set with the begin and end indices of pair `i`.
    pub(crate) fn pair(&self, i: u32) -> (&wgpu::QuerySet, u32, u32) {
        (&self.query_set, 2 * i, 2 * i + 1)
    }

    /// Copies the first `pairs` results to the read-back buffer (call before `finish`).
    pub(crate) fn resolve(&self, encoder: &mut wgpu::CommandEncoder, pairs: u32) {
        encoder.resolve_query_set(&self.query_set, 0..2 * pairs, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, u64::from(pairs) * 16);
    }

    /// Durations in seconds of the first `pairs` pairs; call after the submission completed.
    pub(crate) async fn read(&self, ctx: &GpuContext, pairs: u32) -> Result<Vec<f64>> {
        let slice = self.readback.slice(..u64::from(pairs) * 16);
        let mapped = Callback::new();
        slice.map_async(wgpu::MapMode::Read, mapped.sender());
        ctx.wait_async(None, "the timestamp read-back").await?;
        let period_ns = f64::from(ctx.queue.get_timestamp_period());
        let out = match ctx.delivered(&mapped).await {
            Some(Ok(())) => {
                let out = match slice.get_mapped_range() {
                    Ok(view) => {
                        let ticks: &[u64] = bytemuck::cast_slice(&view);
                        Ok(ticks
                            .chunks_exact(2)
                            .map(|p| p[1].wrapping_sub(p[0]) as f64 * period_ns * 1e-9)
                            .collect())
                    }
                    Err(e) => Err(format!("reading the timestamps: {e}")),
                };
                self.readback.unmap();
                out
            }
            Some(Err(e)) => Err(format!("mapping the timestamps: {e}")),
            None => Err("the timestamps were not mapped after the pass finished".into()),
        };
        let out = out.map_err(|e| ctx.explain(Error::Gpu(e)))?;
        Ok(out)
    }
}
