//! The weight buffers: every op's constants in an aligned slot, buffers opened as needed so
//! that none exceeds the device's largest buffer; and their bytes ([`encode`]), so that what
//! a session allocates and uploads is exactly what the plan says.

use super::arena::align_up;
use super::kernel::{ConvAlgo, ConvPlan, ConvVariant};
use super::{Limits, Precision, WeightSlot, mib};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::plan::Plan;
use crate::winograd::Tile;

/// Every buffer's size is a multiple of this: whole vec4 texels of f32, so that the texture
/// conv variant's copy of a buffer copies all of it.
pub const BUFFER_GRANULE: u64 = 16;

/// How an op's constants are split between slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holding {
    /// One slot, bound by the op's launches.
    Bound,
    /// One slot that only the texture conv variant reads, from a texture copy of the buffer.
    TextureOnly,
    /// A Winograd conv whose GEMM is the texture variant: U in a texture-only slot, and the
    /// bias and pre-activation that its transforms read in a bound slot of their own.
    SplitWinograd,
}

impl Holding {
    /// How a step's constants are held: texture-variant GEMMs read their weights only from
    /// the texture copy (a direct conv's whole slot, a Winograd conv's U; its transforms read
    /// the bias and pre-activation); everything else binds its slot.
    pub(crate) fn of(conv: Option<ConvPlan>) -> Holding {
        match conv {
            Some(c) if c.gemm.variant == ConvVariant::Texture => match c.algo {
                ConvAlgo::Direct => Holding::TextureOnly,
                ConvAlgo::Winograd(_) => Holding::SplitWinograd,
                ConvAlgo::SplitK(_) => Holding::Bound,
            },
            _ => Holding::Bound,
        }
    }
}

/// Elements of a Winograd conv's constants that are U (`[points][cin][coutp]`, first; the bias
/// and the pre-activation follow).
pub(crate) fn winograd_u_len(op: &crate::graph::Op, tile: Tile) -> usize {
    match op {
        crate::graph::Op::Conv(c) => tile.points() * c.cin * crate::graph::pad4(c.cout),
        _ => 0,
    }
}

/// The element counts of an op's slots: (the `weights` slot, the transforms' slot).
pub(crate) fn slot_lens(
    op: &crate::graph::Op,
    tile: Option<Tile>,
    holding: Holding,
) -> (usize, usize) {
    let all = op.constants_len_for(tile);
    match (holding, tile) {
        (Holding::SplitWinograd, Some(t)) => {
            let u = winograd_u_len(op, t);
            (u, all - u)
        }
        _ => (all, 0),
    }
}

/// What [`pack`] gives: the `weights` slots, the transforms' slots, the buffer sizes.
pub(crate) type Packed = (Vec<WeightSlot>, Vec<Option<WeightSlot>>, Vec<u64>);

/// Slots (indexed by op: the `weights` slots, then the Winograd transforms' own slots of
/// [`Holding::SplitWinograd`] ops) and buffer sizes. Slots are packed in op order, each at the
/// next aligned offset of the current buffer; a slot that would overflow it opens a new buffer.
/// Each buffer ends at a multiple of [`BUFFER_GRANULE`]. The slots that only the texture conv
/// variant reads (it reads them from a texture copy of the buffer) come first, in buffers of
/// their own: a session keeps those buffers only until their texture copies are made, so the
/// weights are held once. An op's constants are laid out for its algorithm (`winograd[op]`) at
/// `precision`.
pub(crate) fn pack(
    graph: &Graph,
    winograd: &[Option<Tile>],
    holding: &[Holding],
    precision: Precision,
    limits: &Limits,
) -> Result<Packed> {
    const EMPTY: WeightSlot = WeightSlot {
        buffer: 0,
        offset_bytes: 0,
        size_bytes: 0,
    };
    let mut slots = vec![EMPTY; graph.ops.len()];
    let mut transform_slots = vec![None; graph.ops.len()];
    let mut buffers: Vec<u64> = Vec::new();
    // The texture-only class first; a class opens its own buffers.
    for texture_class in [true, false] {
        let first = buffers.len();
        for (i, (op, tile)) in graph.ops.iter().zip(winograd).enumerate() {
            let (main, rest) = slot_lens(op, *tile, holding[i]);
            let main_texture_only = holding[i] != Holding::Bound;
            let mut put = |len| place(op, len, precision, limits, &mut buffers, first);
            if main_texture_only == texture_class {
                slots[i] = put(main)?;
            }
            if holding[i] == Holding::SplitWinograd && !texture_class {
                transform_slots[i] = Some(put(rest)?);
            }
        }
    }
    for b in &mut buffers {
        *b = b.next_multiple_of(BUFFER_GRANULE);
    }
    Ok((slots, transform_slots, buffers))
}

/// The bytes of a slot of `len` constants: padded to whole vec4 words (16 bytes), as the
/// kernels read them (`consts` in shaders/conv/io32.wgsl), so the last one is in bounds of
/// the binding.
pub(crate) fn slot_bytes(len: usize, precision: Precision) -> u64 {
    (len as u64 * precision.dtype().bytes()).next_multiple_of(16)
}

/// A slot of `len` elements of `op`'s constants, appended to the last of `buffers` (if it is
/// one of `buffers[first..]` and the slot fits) or to a new buffer.
fn place(
    op: &crate::graph::Op,
    len: usize,
    precision: Precision,
    limits: &Limits,
    buffers: &mut Vec<u64>,
    first: usize,
) -> Result<WeightSlot> {
    let align = limits.alignment();
    let max_slot = limits.max_binding_bytes.min(limits.max_buffer_bytes);
    let size = slot_bytes(len, precision);
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
/// algorithm: Winograd's transformed filters for a Winograd conv, split between its two slots
/// where the plan holds it so) in the plan's precision (rounded once to f16, to nearest even, in
/// f16 plans; padded to the slot's size, a multiple of 16 bytes). Bytes between slots and
/// after the last are zero (a new buffer's).
pub fn encode<'a>(
    graph: &'a Graph,
    plan: &'a Plan,
) -> impl Iterator<Item = (usize, u64, Vec<u8>)> + 'a {
    let bytes = move |values: &[f32], slot: &WeightSlot| {
        let mut bytes = match plan.precision {
            Precision::F32 => bytemuck::cast_slice(values).to_vec(),
            Precision::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        bytes.resize(slot.size_bytes as usize, 0);
        (slot.buffer, slot.offset_bytes, bytes)
    };
    graph
        .ops
        .iter()
        .zip(&plan.steps)
        .zip(plan.weights.iter().zip(&plan.transform_weights))
        .filter(|(_, (slot, _))| slot.size_bytes > 0)
        .flat_map(move |((op, step), (slot, transform))| {
            let values = op.constants_for(step.winograd());
            match (transform, step.winograd()) {
                (Some(t), Some(tile)) => {
                    let (u, rest) = values.split_at(winograd_u_len(op, tile));
                    vec![bytes(u, slot), bytes(rest, t)]
                }
                _ => vec![bytes(&values, slot)],
            }
        })
}
