//! Liveness intervals and arena offsets.
//!
//! Offsets: the classic greedy of TFLite's / tinygrad's memory planners. Tensors are taken in
//! some order and each goes at the lowest (first-fit) or tightest (best-fit) aligned gap left by
//! the already-placed tensors whose live intervals intersect its own. A handful of orders are
//! tried and the smallest arena wins; each try is O(n^2 log n) in tensors, a few milliseconds
//! for a ResNet-200.

use super::F32;
use crate::error::{Error, Result};
use crate::graph::Graph;

/// Steps `first..=last` at which a tensor holds live data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub first: usize,
    pub last: usize,
}

impl Interval {
    pub fn intersects(&self, other: &Interval) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    pub fn contains(&self, step: usize) -> bool {
        self.first <= step && step <= self.last
    }
}

/// Each tensor's live interval, `None` for tensors no op (nor the input / outputs) touches.
/// Rejects graphs that read a tensor before it is written or write one twice.
pub(crate) fn liveness(graph: &Graph) -> Result<Vec<Option<Interval>>> {
    let bad = |msg: String| Error::Input(format!("malformed graph: {msg}"));
    let n = graph.tensors.len();
    let name = |t: usize| graph.tensors[t].name.as_str();
    if graph.ops.is_empty() {
        return Err(bad("it has no ops".into()));
    }
    let last_step = graph.ops.len() - 1;
    for t in [graph.input, graph.logits]
        .into_iter()
        .chain(graph.features.iter().map(|f| f.1))
    {
        if t >= n {
            return Err(bad(format!("tensor id {t} out of range ({n} tensors)")));
        }
    }
    let mut live: Vec<Option<Interval>> = vec![None; n];
    live[graph.input] = Some(Interval { first: 0, last: 0 });
    for (step, op) in graph.ops.iter().enumerate() {
        for t in op.inputs() {
            match live.get_mut(t) {
                None => {
                    return Err(bad(format!(
                        "op `{}` reads tensor id {t} of {n}",
                        op.name()
                    )));
                }
                Some(None) => {
                    return Err(bad(format!(
                        "op `{}` reads `{}` before any op writes it",
                        op.name(),
                        name(t)
                    )));
                }
                Some(Some(iv)) => iv.last = step,
            }
        }
        for t in op.outputs() {
            match live.get_mut(t) {
                None => {
                    return Err(bad(format!(
                        "op `{}` writes tensor id {t} of {n}",
                        op.name()
                    )));
                }
                Some(Some(_)) => {
                    return Err(bad(format!(
                        "op `{}` writes `{}`, which already holds data",
                        op.name(),
                        name(t)
                    )));
                }
                Some(slot) => {
                    *slot = Some(Interval {
                        first: step,
                        last: step,
                    })
                }
            }
        }
    }
    for t in std::iter::once(graph.logits).chain(graph.features.iter().map(|f| f.1)) {
        match &mut live[t] {
            Some(iv) => iv.last = last_step,
            None => return Err(bad(format!("no op writes the output `{}`", name(t)))),
        }
    }
    Ok(live)
}

/// Offsets of one batch size.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub offsets: Vec<u64>,
    pub arena_bytes: u64,
    pub naive_bytes: u64,
    pub lower_bound_bytes: u64,
}

pub(crate) fn align_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

/// Max over steps of the bytes live at that step.
pub(crate) fn lower_bound(sizes: &[u64], live: &[Option<Interval>]) -> u64 {
    let steps = live
        .iter()
        .flatten()
        .map(|iv| iv.last + 1)
        .max()
        .unwrap_or(0);
    // Difference array: +size at first, -size after last.
    let mut delta = vec![0i128; steps + 1];
    for (&s, iv) in sizes.iter().zip(live) {
        if let Some(iv) = iv {
            delta[iv.first] += i128::from(s);
            delta[iv.last + 1] -= i128::from(s);
        }
    }
    let (mut cur, mut max) = (0i128, 0i128);
    for d in delta {
        cur += d;
        max = max.max(cur);
    }
    max as u64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    First,
    Best,
}

/// Assigns aligned offsets to tensors of `sizes` bytes live over `live` (size-0 and dead
/// tensors get offset 0 and take no space). Tries several greedy orders, keeps the smallest.
pub(crate) fn assign(sizes: &[u64], live: &[Option<Interval>], align: u64) -> Layout {
    debug_assert!(sizes.iter().all(|s| s % F32 == 0));
    let ids: Vec<usize> = (0..sizes.len())
        .filter(|&t| sizes[t] > 0 && live[t].is_some())
        .collect();
    let iv = |t: usize| live[t].expect("filtered");
    let len = |t: usize| (iv(t).last - iv(t).first + 1) as u64;

    let by_size = {
        let mut v = ids.clone();
        v.sort_by_key(|&t| (std::cmp::Reverse(sizes[t]), iv(t).first, t));
        v
    };
    let by_time = {
        let mut v = ids.clone();
        v.sort_by_key(|&t| (iv(t).first, std::cmp::Reverse(sizes[t]), t));
        v
    };
    let by_area = {
        let mut v = ids.clone();
        v.sort_by_key(|&t| {
            (
                std::cmp::Reverse(u128::from(sizes[t]) * u128::from(len(t))),
                iv(t).first,
                t,
            )
        });
        v
    };
    let by_span = {
        let mut v = ids.clone();
        v.sort_by_key(|&t| (std::cmp::Reverse(len(t)), std::cmp::Reverse(sizes[t]), t));
        v
    };

    let mut best: Option<Vec<u64>> = None;
    let mut best_end = u64::MAX;
    for order in [&by_size, &by_area, &by_time, &by_span] {
        for fit in [Fit::First, Fit::Best] {
            let offsets = place(order, sizes, live, align, fit, best_end);
            if let Some(offsets) = offsets {
                best_end = arena_end(&offsets, sizes);
                best = Some(offsets);
            }
        }
    }
    let offsets = best.unwrap_or_else(|| vec![0; sizes.len()]);
    Layout {
        arena_bytes: arena_end(&offsets, sizes),
        naive_bytes: ids.iter().map(|&t| sizes[t]).sum(),
        lower_bound_bytes: lower_bound(sizes, live),
        offsets,
    }
}

fn arena_end(offsets: &[u64], sizes: &[u64]) -> u64 {
    offsets
        .iter()
        .zip(sizes)
        .map(|(o, s)| if *s > 0 { o + s } else { 0 })
        .max()
        .unwrap_or(0)
}

/// One greedy pass; gives up (`None`) as soon as the arena would reach `give_up_at` bytes
/// (an earlier pass already did at least as well).
fn place(
    order: &[usize],
    sizes: &[u64],
    live: &[Option<Interval>],
    align: u64,
    fit: Fit,
    give_up_at: u64,
) -> Option<Vec<u64>> {
    let mut offsets = vec![0u64; sizes.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(order.len());
    let mut busy: Vec<(u64, u64)> = Vec::new();
    for &t in order {
        let (size, iv) = (sizes[t], live[t].expect("only live tensors are ordered"));
        busy.clear();
        busy.extend(
            placed
                .iter()
                .filter(|&&p| live[p].expect("placed").intersects(&iv))
                .map(|&p| (offsets[p], offsets[p] + sizes[p])),
        );
        busy.sort_unstable();
        // Walk the gaps between busy ranges in address order.
        let mut cursor = 0u64;
        let mut chosen: Option<(u64, u64)> = None; // (offset, gap)
        for &(start, end) in &busy {
            let at = align_up(cursor, align);
            if at + size <= start {
                let gap = start - at;
                match fit {
                    Fit::First => {
                        chosen = Some((at, gap));
                        break;
                    }
                    Fit::Best => {
                        if chosen.is_none_or(|(_, g)| gap < g) {
                            chosen = Some((at, gap));
                        }
                    }
                }
            }
            cursor = cursor.max(end);
        }
        let offset = chosen.map_or_else(|| align_up(cursor, align), |c| c.0);
        if offset + size >= give_up_at {
            return None;
        }
        offsets[t] = offset;
        placed.push(t);
    }
    Some(offsets)
}
