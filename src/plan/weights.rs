//! The weight buffers: every op's constants in an aligned slot, buffers opened as needed so
//! that none exceeds the device's largest buffer; and their bytes ([`encode`]), so that what
//! a session allocates and uploads is exactly what the plan says.

use super::arena::align_up;
use super::{Limits, Precision, WeightSlot, mib};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::plan::Plan;
use crate::winograd::Tile;

/// Every buffer's size is a multiple of this: whole vec4 texels of f32, so that the texture
/// conv variant's copy of a buffer copies all of it.
pub const BUFFER_GRANULE: u64 = 16;

/// Slots (indexed by op) and buffer sizes. Slots are packed in op order, each at the next
/// aligned offset of the current buffer; a slot that would overflow it opens a new buffer.
/// Each buffer ends at a multiple of [`BUFFER_GRANULE`]. The ops whose constants only the
/// texture conv variant reads (`texture_only[op]`: it reads them from a texture copy of the
/// buffer) come first, in buffers of their own: a session keeps those buffers only until
/// their texture copies are made, so the weights are held once.
/// An op's slot holds its constants laid out for its algorithm (`winograd[op]`) at
/// `precision`.
pub(crate) fn pack(
    graph: &Graph,
    winograd: &[Option<Tile>],
    texture_only: &[bool],
    precision: Precision,
    limits: &Limits,
) -> Result<(Vec<WeightSlot>, Vec<u64>)> {
    let mut slots = vec![
        WeightSlot {
            buffer: 0,
            offset_bytes: 0,
            size_bytes: 0,
        };
        graph.ops.len()
    ];
    let mut buffers: Vec<u64> = Vec::new();
    for class in [true, false] {
        // A class opens its own buffers.
        let first = buffers.len();
        for (i, (op, tile)) in graph.ops.iter().zip(winograd).enumerate() {
            if texture_only[i] == class {
                slots[i] = place(op, *tile, precision, limits, &mut buffers, first)?;
            }
        }
    }
    for b in &mut buffers {
        *b = b.next_multiple_of(BUFFER_GRANULE);
    }
    Ok((slots, buffers))
}

/// `op`'s slot, appended to the last of `buffers` (if it is one of `buffers[first..]` and the
/// slot fits) or to a new buffer.
fn place(
    op: &crate::graph::Op,
    tile: Option<Tile>,
    precision: Precision,
    limits: &Limits,
    buffers: &mut Vec<u64>,
    first: usize,
) -> Result<WeightSlot> {
    let align = limits.alignment();
    let max_slot = limits.max_binding_bytes.min(limits.max_buffer_bytes);
    // f16 slots are padded to 4 bytes (whole words).
    let size = (op.constants_len_for(tile) as u64 * precision.dtype().bytes()).next_multiple_of(4);
    if size == 0 {
        return Ok(WeightSlot {
            buffer: 0,
            offset_bytes: 0,
            size_bytes: 0,
        });
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
            .is_some_and(|e| e.next_multiple_of(BUFFER_GRANULE) <= limits.max_buffer_bytes)
    };
    let n = buffers.len();
    Ok(match buffers.last_mut() {
        Some(end) if n > first && fits(*end) => {
            let offset_bytes = align_up(*end, align);
            *end = offset_bytes + size;
            WeightSlot {
                buffer: n - 1,
                offset_bytes,
                size_bytes: size,
            }
        }
        _ => {
            buffers.push(size);
            WeightSlot {
                buffer: buffers.len() - 1,
                offset_bytes: 0,
                size_bytes: size,
            }
        }
    })
}

/// The bytes of every op's constants in `plan`: `(buffer, byte offset, bytes)` per slot, in op
/// order; each op's constants ([`Op::constants_for`](crate::graph::Op::constants_for) its
/// algorithm: Winograd's transformed filters for a Winograd conv) in the plan's precision
/// (rounded once to f16, to nearest even, in f16 plans; padded to whole words). Bytes between
/// slots and after the last are zero (a new buffer's).
pub fn encode<'a>(
    graph: &'a Graph,
    plan: &'a Plan,
) -> impl Iterator<Item = (usize, u64, Vec<u8>)> + 'a {
    graph
        .ops
        .iter()
        .zip(&plan.steps)
        .zip(&plan.weights)
        .filter(|(_, slot)| slot.size_bytes > 0)
        .map(|((op, step), slot)| {
            let values = op.constants_for(step.winograd());
            let mut bytes = match plan.precision {
                Precision::F32 => bytemuck::cast_slice(&values).to_vec(),
                Precision::F16 => values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            bytes.resize(slot.size_bytes as usize, 0);
            (slot.buffer, slot.offset_bytes, bytes)
        })
}
