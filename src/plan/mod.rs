//! The static execution plan: dispatch order, tensor lifetimes, arena offsets and the weight
//! buffer layout, for one batch size. Pure data, no GPU: the session turns it into buffers and
//! bind groups once and replays it.
//!
//! * **Liveness** ([`arena`]): a tensor lives from the step that writes it (the graph input from
//!   step 0: it is uploaded before the first dispatch) to the last step that reads it, inclusive;
//!   `logits` and every `features` map live until the last step. An op's inputs and outputs are
//!   live at the same step, so they never share memory (no in-place ops).
//! * **Offsets** ([`arena`]): every activation lives in one arena buffer. Offsets are assigned
//!   by a few greedy heuristics over the live intervals (largest tensor first, first-fit /
//!   best-fit, chronological first-fit, ...) and the smallest arena wins.
//! * **Sub-batching**: if the arena for the requested batch exceeds the device's largest
//!   binding / buffer, the plan is made for the largest sub-batch that fits, and the session
//!   loops over sub-batches (a last, partial sub-batch uses the same offsets, it just touches
//!   less of each tensor). If one image does not fit, planning fails with
//!   [`Error::DeviceLimits`].
//! * **Weights** ([`weights`]): each op's [`Op::constants`] get an aligned slot in one of
//!   several weight buffers, each no bigger than the device allows.

mod arena;
mod check;
pub mod kernel;
mod report;
mod weights;

use crate::error::{Error, Result};
use crate::graph::{Graph, Op};

pub use arena::Interval;
pub use kernel::{ConvConfig, ConvVariant, DeviceProfile};

/// The device limits the plan must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest storage buffer binding (the arena is bound whole; one weight slot is one binding).
    pub max_binding_bytes: u64,
    /// Largest buffer.
    pub max_buffer_bytes: u64,
    /// Every tensor offset and weight slot offset is a multiple of this.
    pub storage_offset_alignment: u64,
}

/// The kernels index the arena with u32 element indices: no arena may end past 2^32 f32
/// elements (16 GiB), whatever the device allows. Bigger batches become sub-batches.
pub const MAX_ADDRESSABLE_BYTES: u64 = (u32::MAX as u64 + 1) * F32;

/// Offsets are never aligned to less than this, whatever the device reports: 256 bytes keeps
/// every tensor start aligned for vectorised loads, and plans comparable across devices.
pub const MIN_ALIGNMENT: u64 = 256;

impl Limits {
    /// The limits of a wgpu device (pass the limits the device was created with). The offset
    /// alignment is at least [`MIN_ALIGNMENT`].
    pub fn from_wgpu(l: &wgpu::Limits) -> Limits {
        Limits {
            max_binding_bytes: l.max_storage_buffer_binding_size,
            max_buffer_bytes: l.max_buffer_size,
            storage_offset_alignment: u64::from(l.min_storage_buffer_offset_alignment)
                .max(MIN_ALIGNMENT),
        }
    }

    /// No size limits, 256-byte alignment: for reports and tests.
    pub fn unlimited() -> Limits {
        Limits {
            max_binding_bytes: u64::MAX,
            max_buffer_bytes: u64::MAX,
            storage_offset_alignment: MIN_ALIGNMENT,
        }
    }

    /// The largest arena the device can hold and bind whole, and the kernels can address
    /// ([`MAX_ADDRESSABLE_BYTES`]).
    pub fn max_arena_bytes(&self) -> u64 {
        self.max_binding_bytes
            .min(self.max_buffer_bytes)
            .min(MAX_ADDRESSABLE_BYTES)
    }

    /// The alignment actually used (never 0).
    fn alignment(&self) -> u64 {
        self.storage_offset_alignment.max(1)
    }
}

/// A static plan for a batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Images per sub-batch: what the arena is sized for and what one pass over the steps runs.
    pub batch: usize,
    /// The batch asked for; `sub_batches()` passes of `batch` images cover it.
    pub requested_batch: usize,
    /// One per graph op, in execution order (`steps[i].op == i`).
    pub steps: Vec<Step>,
    /// Indexed by `TensorId`, sized for `batch` images. Tensors no op touches get size 0.
    pub tensors: Vec<Placement>,
    /// Size of the one activation buffer: the end of the highest-placed tensor.
    pub arena_bytes: u64,
    /// Sum of all tensor sizes: what one buffer per tensor would take.
    pub naive_bytes: u64,
    /// Max over steps of the bytes live at that step: no offset assignment can do better.
    pub lower_bound_bytes: u64,
    /// Indexed by op; ops with no constants get a slot of size 0 (buffer 0, offset 0; unbound).
    pub weights: Vec<WeightSlot>,
    /// Byte size of each weights buffer (the end of its last slot; slots are padded apart for
    /// alignment, so this can exceed the sum of its slots).
    pub weight_buffers: Vec<u64>,
    /// Sum of the slot sizes, unpadded: the model's constant bytes. The buffers' total is
    /// `weight_buffers.iter().sum()`.
    pub weights_bytes: u64,
}

/// One dispatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index into [`Graph::ops`].
    pub op: usize,
    pub name: String,
    /// `"conv"`, `"max_pool"`, `"global_avg_pool"` or `"bn_relu"`.
    pub kind: &'static str,
    /// `[N, H, W, C]` of the op's (first) output, `N` the sub-batch.
    pub output_shape: [usize; 4],
    /// Multiply-adds for the whole sub-batch.
    pub macs: u64,
    /// Convs: the kernel variant and tile configuration ([`kernel::choose_conv`]).
    pub conv: Option<ConvConfig>,
}

/// Where a tensor lives in the arena, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub offset_bytes: u64,
    pub size_bytes: u64,
    /// First and last step (inclusive) at which the tensor holds live data.
    pub first_step: usize,
    pub last_step: usize,
}

impl Placement {
    pub fn interval(&self) -> Interval {
        Interval {
            first: self.first_step,
            last: self.last_step,
        }
    }

    /// End of the tensor's bytes in the arena.
    pub fn end_bytes(&self) -> u64 {
        self.offset_bytes + self.size_bytes
    }
}

/// Where an op's constants live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightSlot {
    /// Index into [`Plan::weight_buffers`].
    pub buffer: usize,
    pub offset_bytes: u64,
    /// `4 * op.constants_len()`.
    pub size_bytes: u64,
}

/// The kind of an op, as shown in plans.
pub fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Conv(_) => "conv",
        Op::MaxPool(_) => "max_pool",
        Op::GlobalAvgPool(_) => "global_avg_pool",
        Op::BnRelu(_) => "bn_relu",
    }
}

/// Bytes of one f32 element.
const F32: u64 = 4;

/// Plans `graph` for `batch` images on a device with `limits`. If the arena for `batch` images
/// is too big for the device, the plan is for the largest sub-batch that fits. Kernel choices
/// are for a hardware GPU ([`DeviceProfile::gpu`]); see [`plan_for`].
pub fn plan(graph: &Graph, batch: usize, limits: &Limits) -> Result<Plan> {
    plan_for(graph, batch, limits, &DeviceProfile::gpu())
}

/// As [`plan`], with the per-step kernel choices made for `device`.
pub fn plan_for(
    graph: &Graph,
    batch: usize,
    limits: &Limits,
    device: &DeviceProfile,
) -> Result<Plan> {
    if batch == 0 {
        return Err(Error::Input("the batch size must be at least 1".into()));
    }
    let intervals = arena::liveness(graph)?;
    let per_image: Vec<u64> = graph
        .tensors
        .iter()
        .zip(&intervals)
        .map(|(t, iv)| {
            if iv.is_some() {
                t.len() as u64 * F32
            } else {
                0
            }
        })
        .collect();
    let align = limits.alignment();
    let cap = limits.max_arena_bytes();
    let layout_for = |b: usize| {
        let sizes: Vec<u64> = per_image.iter().map(|s| s * b as u64).collect();
        arena::assign(&sizes, &intervals, align)
    };

    // One image must fit; then every size below is at most `cap` bytes, so no sum overflows.
    let one = layout_for(1);
    if one.arena_bytes > cap {
        let h = &graph.tensors[graph.input];
        return Err(Error::DeviceLimits(format!(
            "one {}x{} image needs a {} activation arena (lower bound {}), but this device \
             binds at most {} (max_storage_buffer_binding_size {}, max_buffer_size {}, kernel \
             addressing {}); use a smaller input size",
            h.h,
            h.w,
            mib(one.arena_bytes),
            mib(one.lower_bound_bytes),
            mib(cap),
            limits.max_binding_bytes,
            limits.max_buffer_bytes,
            mib(MAX_ADDRESSABLE_BYTES),
        )));
    }
    // The arena grows with the batch: `b` images need at least `b` times one image's lower
    // bound, which caps the search. The largest sub-batch that fits, by binary search.
    let upper = (cap / one.lower_bound_bytes.max(1)).clamp(1, batch as u64) as usize;
    let (mut lo, mut hi, mut layout) = (1usize, upper, one);
    if upper > 1 {
        // Usually the whole batch fits: one layout, no search.
        let l = layout_for(upper);
        if l.arena_bytes <= cap {
            (lo, layout) = (upper, l);
        } else {
            hi = upper - 1;
        }
    }
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let l = layout_for(mid);
        if l.arena_bytes <= cap {
            (lo, layout) = (mid, l);
        } else {
            hi = mid - 1;
        }
    }
    let sub = lo;

    let (weights, weight_buffers) = weights::pack(graph, limits)?;
    let weights_bytes = weights.iter().map(|w| w.size_bytes).sum();

    let steps = graph
        .ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let out = &graph.tensors[op.outputs()[0]];
            Ok(Step {
                op: i,
                name: op.name().to_string(),
                kind: op_kind(op),
                output_shape: [sub, out.h, out.w, out.c],
                macs: op.macs_per_image(&graph.tensors) * sub as u64,
                conv: match op {
                    Op::Conv(c) => Some(kernel::choose_conv(c, &graph.tensors, sub, device)?),
                    _ => None,
                },
            })
        })
        .collect::<Result<_>>()?;
    let tensors = intervals
        .iter()
        .zip(&layout.offsets)
        .zip(&per_image)
        .map(|((iv, &offset_bytes), &size)| {
            let iv = iv.unwrap_or(Interval { first: 0, last: 0 });
            Placement {
                offset_bytes,
                size_bytes: size * sub as u64,
                first_step: iv.first,
                last_step: iv.last,
            }
        })
        .collect();

    Ok(Plan {
        batch: sub,
        requested_batch: batch,
        steps,
        tensors,
        arena_bytes: layout.arena_bytes,
        naive_bytes: layout.naive_bytes,
        lower_bound_bytes: layout.lower_bound_bytes,
        weights,
        weight_buffers,
        weights_bytes,
    })
}

impl Plan {
    /// Passes over the steps needed to run `requested_batch` images (the last may be partial).
    pub fn sub_batches(&self) -> usize {
        self.requested_batch.div_ceil(self.batch)
    }

    /// Multiply-adds of one image.
    pub fn macs_per_image(&self) -> u64 {
        self.steps.iter().map(|s| s.macs).sum::<u64>() / self.batch as u64
    }

    /// `arena_bytes / lower_bound_bytes` (1.0 is optimal).
    pub fn arena_ratio(&self) -> f64 {
        self.arena_bytes as f64 / self.lower_bound_bytes.max(1) as f64
    }
}

/// Bytes in MiB, for messages.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests;
