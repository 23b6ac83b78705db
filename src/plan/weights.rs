//! The weight buffers: every op's constants in an aligned slot, buffers opened as needed so
//! that none exceeds the device's largest buffer.

use super::arena::align_up;
use super::{F32, Limits, WeightSlot, mib};
use crate::error::{Error, Result};
use crate::graph::Graph;

/// Slots (indexed by op) and buffer sizes. Slots are packed in op order, each at the next
/// aligned offset of the current buffer; a slot that would overflow it opens a new buffer.
pub(crate) fn pack(graph: &Graph, limits: &Limits) -> Result<(Vec<WeightSlot>, Vec<u64>)> {
    let align = limits.alignment();
    let max_slot = limits.max_binding_bytes.min(limits.max_buffer_bytes);
    let mut slots = Vec::with_capacity(graph.ops.len());
    let mut buffers: Vec<u64> = Vec::new();
    for op in &graph.ops {
        let size = op.constants_len() as u64 * F32;
        if size == 0 {
            slots.push(WeightSlot {
                buffer: 0,
                offset_bytes: 0,
                size_bytes: 0,
            });
            continue;
        }
        if size > max_slot {
            return Err(Error::DeviceLimits(format!(
                "the constants of op `{}` take {} ({size} bytes), more than this device can bind \
                 ({} per binding, {} per buffer)",
                op.name(),
                mib(size),
                limits.max_binding_bytes,
                limits.max_buffer_bytes,
            )));
        }
        let fits = |end: u64| {
            align_up(end, align)
                .checked_add(size)
                .is_some_and(|e| e <= limits.max_buffer_bytes)
        };
        match buffers.last_mut() {
            Some(end) if fits(*end) => {
                let offset_bytes = align_up(*end, align);
                *end = offset_bytes + size;
                slots.push(WeightSlot {
                    buffer: buffers.len() - 1,
                    offset_bytes,
                    size_bytes: size,
                });
            }
            _ => {
                buffers.push(size);
                slots.push(WeightSlot {
                    buffer: buffers.len() - 1,
                    offset_bytes: 0,
                    size_bytes: size,
                });
            }
        }
    }
    Ok((slots, buffers))
}
