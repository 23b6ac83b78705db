//! Liveness intervals and arena offsets.
//!
//! Offsets: the classic greedy of TFLite's / tinygrad's memory planners. Tensors are taken in
//! some order and each goes at the lowest (first-fit) or tightest (best-fit) aligned gap left by
//! the already-placed tensors whose live intervals intersect its own. A handful of orders are
//! tried and the smallest arena wins; each try is O(n^2 log n) in tensors, a few milliseconds
//! for a ResNet-200.

use crate::error::{Error, Result};
use crate::graph::{Graph, Op};

/// Steps `first..=last` at which a tensor holds live data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// First live step.
    pub first: usize,
    /// Last live step (inclusive).
    pub last: usize,
}

impl Interval {
    /// Whether the two intervals share a step.
    pub fn intersects(&self, other: &Interval) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// Whether `step` is in the interval.
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

/// Sub-steps of a step: a Winograd conv runs as input transform, GEMMs, output transform (a
/// split-K conv as GEMM slices, reduction), so its input is dead after the first, its scratch
/// lives only within the step, and its output is born in the last. Liveness is measured in
/// phases (`step * PHASES + k`).
pub const PHASES: usize = 3;

/// The phase interval of every graph tensor, from its step interval (see [`liveness`]): a
/// tensor written by step s is live from phase `3s` (from `3s + 2` when a phased step, a
/// Winograd or split-K conv, writes it), read by step s until phase `3s + 2` (until `3s` when
/// step s is phased and reads it as its input only); the graph's outputs until the last phase.
pub(crate) fn phase_liveness(
    graph: &Graph,
    steps: &[Option<Interval>],
    phased: &[bool],
) -> Vec<Option<Interval>> {
    let last = PHASES - 1;
    let outputs: Vec<usize> = std::iter::once(graph.logits)
        .chain(graph.features.iter().map(|f| f.1))
        .collect();
    steps
        .iter()
        .enumerate()
        .map(|(t, iv)| {
            let iv = (*iv)?;
            let written_late =
                t != graph.input && phased[iv.first] && graph.ops[iv.first].outputs().contains(&t);
            let read_early = !outputs.contains(&t)
                && phased[iv.last]
                && match &graph.ops[iv.last] {
                    Op::Conv(c) => {
                        c.input == t && c.residual.as_ref().is_none_or(|r| r.tensor != t)
                    }
                    _ => false,
                };
            Some(Interval {
                first: iv.first * PHASES + if written_late { last } else { 0 },
                last: iv.last * PHASES + if read_early { 0 } else { last },
            })
        })
        .collect()
}

/// Offsets of one batch size.
#[derive(Clone, Debug)]
pub(crate) struct Packing {
    pub offsets: Vec<u64>,
    pub arena_bytes: u64,
    pub naive_bytes: u64,
    pub lower_bound_bytes: u64,
}

pub(crate) fn align_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

/// Bytes live at each step (a difference array: +size at first, -size after last, summed).
fn live_bytes(sizes: &[u64], live: &[Option<Interval>]) -> Vec<u64> {
    let steps = live
        .iter()
        .flatten()
        .map(|iv| iv.last + 1)
        .max()
        .unwrap_or(0);
    let mut delta = vec![0i128; steps + 1];
    for (&s, iv) in sizes.iter().zip(live) {
        if let Some(iv) = iv {
            delta[iv.first] += i128::from(s);
            delta[iv.last + 1] -= i128::from(s);
        }
    }
    let mut cur = 0i128;
    delta[..steps]
        .iter()
        .map(|d| {
            cur += d;
            cur as u64
        })
        .collect()
}

/// Max over steps of the bytes live at that step.
pub(crate) fn lower_bound(sizes: &[u64], live: &[Option<Interval>]) -> u64 {
    live_bytes(sizes, live).into_iter().max().unwrap_or(0)
}

/// The step at which the most bytes are live (the first such).
pub(crate) fn peak_step(sizes: &[u64], live: &[Option<Interval>]) -> usize {
    let bytes = live_bytes(sizes, live);
    let max = bytes.iter().copied().max().unwrap_or(0);
    bytes.iter().position(|&b| b == max).unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    First,
    Best,
}

/// Greedy passes [`refine`] may spend on one layout.
const REFINE_PASSES: usize = 2000;

/// Assigns aligned offsets to tensors of `sizes` bytes live over `live` (size-0 and dead
/// tensors get offset 0 and take no space). Tries several greedy orders, keeps the smallest.
pub(crate) fn assign(sizes: &[u64], live: &[Option<Interval>], align: u64) -> Packing {
    debug_assert!(sizes.iter().all(|s| s % 2 == 0));
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

    // The tensors of the most crowded steps first (each by the most bytes live at any step of
    // its life), largest first among equals: what packs the peak tightly when short-lived
    // large tensors (Winograd's scratch) crowd a few steps.
    let by_pressure = {
        let bytes = live_bytes(sizes, live);
        let pressure = |t: usize| bytes[iv(t).first..=iv(t).last].iter().copied().max();
        let mut v = ids.clone();
        v.sort_by_key(|&t| {
            (
                std::cmp::Reverse(pressure(t)),
                std::cmp::Reverse(sizes[t]),
                t,
            )
        });
        v
    };

    let lower = lower_bound(sizes, live);
    let mut best: Option<(Vec<u64>, Vec<usize>, Fit)> = None;
    let mut best_end = u64::MAX;
    for order in [&by_size, &by_area, &by_time, &by_span, &by_pressure] {
        for fit in [Fit::First, Fit::Best] {
            if let Some(offsets) = place(order, sizes, live, align, fit, best_end) {
                best_end = arena_end(&offsets, sizes);
                best = Some((offsets, order.clone(), fit));
            }
        }
    }
    // Refinement: the greedy orders trip where a short-lived tensor (Winograd's scratch)
    // takes the low addresses a long-lived one needed.
    let best = best.map(|(offsets, order, fit)| {
        if best_end > align_up(lower, align)
            && let Some((refined, end)) = refine(&order, &offsets, fit, sizes, live, align, lower)
            && end < best_end
        {
            return refined;
        }
        offsets
    });
    let offsets = best.unwrap_or_else(|| vec![0; sizes.len()]);
    Packing {
        arena_bytes: arena_end(&offsets, sizes),
        naive_bytes: ids.iter().map(|&t| sizes[t]).sum(),
        lower_bound_bytes: lower,
        offsets,
    }
}

/// A local search over placement orders, from `order` (whose layout is `offsets`): the tensor
/// that ends highest is moved ahead of one of the tensors below it that share a phase with it
/// (or to the front), whichever move leaves the fewest bytes above the lower bound; a move
/// that helps nothing is still taken (the search walks across plateaus) unless it leads to an
/// order seen before. Stops at the lower bound or after [`REFINE_PASSES`] passes. Returns the
/// best layout found and its end.
fn refine(
    order: &[usize],
    offsets: &[u64],
    fit: Fit,
    sizes: &[u64],
    live: &[Option<Interval>],
    align: u64,
    lower: u64,
) -> Option<(Vec<u64>, u64)> {
    use std::collections::HashSet;
    use std::hash::{DefaultHasher, Hash, Hasher};
    let target = align_up(lower, align);
    // Bytes above the target, summed over tensors: what a move should shrink even when the
    // arena's end stays put.
    let excess = |offsets: &[u64]| -> u64 {
        order
            .iter()
            .map(|&t| (offsets[t] + sizes[t]).saturating_sub(target))
            .sum()
    };
    let hash = |order: &[usize]| {
        let mut h = DefaultHasher::new();
        order.hash(&mut h);
        h.finish()
    };
    let mut seen = HashSet::from([hash(order)]);
    let (mut order, mut offsets) = (order.to_vec(), offsets.to_vec());
    let mut best: Option<(Vec<u64>, u64)> = None;
    let mut passes = 0;
    while passes < REFINE_PASSES {
        let top = *order
            .iter()
            .max_by_key(|&&t| (offsets[t] + sizes[t], std::cmp::Reverse(t)))?;
        let at = order.iter().position(|&t| t == top)?;
        let iv = live[top]?;
        // Where `top` may move: to the front, or just ahead of a tensor placed before it that
        // is live with it and sits below it.
        let targets: Vec<usize> = std::iter::once(0)
            .chain((1..at).filter(|&j| {
                let u = order[j];
                live[u].is_some_and(|l| l.intersects(&iv)) && offsets[u] < offsets[top]
            }))
            .filter(|&j| j < at)
            .collect();
        let mut next: Option<(u64, u64, Vec<usize>, Vec<u64>)> = None; // (excess, end, ..)
        for j in targets {
            let mut o = order.clone();
            o[j..=at].rotate_right(1);
            if seen.contains(&hash(&o)) {
                continue;
            }
            passes += 1;
            let Some(offs) = place(&o, sizes, live, align, fit, u64::MAX) else {
                continue;
            };
            let (x, e) = (excess(&offs), arena_end(&offs, sizes));
            if next.as_ref().is_none_or(|n| (x, e) < (n.0, n.1)) {
                next = Some((x, e, o, offs));
            }
            if passes >= REFINE_PASSES {
                break;
            }
        }
        let (_, end, o, offs) = next?;
        if best.as_ref().is_none_or(|b| end < b.1) {
            best = Some((offs.clone(), end));
        }
        if end <= target {
            break;
        }
        seen.insert(hash(&o));
        (order, offsets) = (o, offs);
    }
    best
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
