//! The weight buffers: every op's constants in an aligned slot, buffers opened as needed so
//! that none exceeds the device's largest buffer.

use super::arena::align_up;
use super::{Limits, Precision, WeightSlot, mib};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::winograd::Tile;

/// Slots (indexed by op) and buffer sizes. Slots are packed in op order, each at the next
/// aligned offset of the current buffer; a slot that would overflow it opens a new buffer.
/// An op's slot holds its constants laid out for its algorithm (`winograd[op]`) at
/// `precision`.
pub(crate) fn pack(
    graph: &Graph,
    winograd: &[Option<Tile>],
    precision: Precision,
    limits: &Limits,
) -> Result<(Vec<WeightSlot>, Vec<u64>)> {
    let align = limits.alignment();
    let max_slot = limits.max_binding_bytes.min(limits.max_buffer_bytes);
    let mut slots = Vec::with_capacity(graph.ops.len());
    let mut buffers: Vec<u64> = Vec::new();
    let elem = match precision {
        Precision::F32 => 4,
        Precision::F16 => 2,
    };
    for (op, tile) in graph.ops.iter().zip(winograd) {
        // f16 slots are padded to 4 bytes (whole words).
        let size = (op.constants_len_for(*tile) as u64 * elem).next_multiple_of(4);
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
