//! The plan's invariants, checked from scratch against the graph: what every test runs on every
//! plan it makes (and what a session may assert in debug builds).

use super::arena::Interval;
use super::{F32, Limits, Plan, op_kind};
use crate::graph::Graph;

impl Plan {
    /// Checks the plan against `graph` and `limits`; the error lists every violation found.
    ///
    /// * one step per op, in order, with the sub-batch's shapes and MACs;
    /// * every tensor sized for `batch` images, at an aligned offset inside the arena, live
    ///   exactly from its writer (step 0 for the input) to its last reader (the last step for
    ///   logits and features);
    /// * no two tensors live at a common step share a byte;
    /// * `lower_bound <= arena <= min(max_binding, max_buffer)`, and the naive and lower-bound
    ///   figures recomputed;
    /// * every op's constants in an aligned slot of the right size, inside its buffer; slots of
    ///   a buffer disjoint; buffers within the device's limits.
    pub fn check(&self, graph: &Graph, limits: &Limits) -> Result<(), String> {
        let mut errs: Vec<String> = Vec::new();
        let align = limits.alignment();
        let b = self.batch as u64;
        let n_steps = graph.ops.len();
        if self.batch == 0 || self.batch > self.requested_batch {
            errs.push(format!(
                "sub-batch {} for a requested batch of {}",
                self.batch, self.requested_batch
            ));
        }

        if self.steps.len() != n_steps {
            errs.push(format!("{} steps for {} ops", self.steps.len(), n_steps));
        }
        for (i, (s, op)) in self.steps.iter().zip(&graph.ops).enumerate() {
            let out = &graph.tensors[op.outputs()[0]];
            let want = [self.batch, out.h, out.w, out.c];
            if s.op != i || s.name != op.name() || s.kind != op_kind(op) || s.output_shape != want {
                errs.push(format!("step {i} ({}) does not describe op {i}", s.name));
            }
            if s.macs != op.macs_per_image(&graph.tensors) * b {
                errs.push(format!("step {i} ({}): wrong MACs", s.name));
            }
        }

        // Liveness, recomputed: writer step, last reader step.
        let mut expect: Vec<Option<Interval>> = vec![None; graph.tensors.len()];
        expect[graph.input] = Some(Interval { first: 0, last: 0 });
        for (step, op) in graph.ops.iter().enumerate() {
            for t in op.outputs() {
                expect[t] = Some(Interval {
                    first: step,
                    last: step,
                });
            }
        }
        for (step, op) in graph.ops.iter().enumerate() {
            for t in op.inputs() {
                if let Some(iv) = &mut expect[t] {
                    iv.last = iv.last.max(step);
                }
            }
        }
        for t in std::iter::once(graph.logits).chain(graph.features.iter().map(|f| f.1)) {
            if let Some(iv) = &mut expect[t] {
                iv.last = n_steps - 1;
            }
        }

        if self.tensors.len() != graph.tensors.len() {
            errs.push(format!(
                "{} placements for {} tensors",
                self.tensors.len(),
                graph.tensors.len()
            ));
        }
        let mut naive = 0u64;
        for (t, (p, info)) in self.tensors.iter().zip(&graph.tensors).enumerate() {
            let name = &info.name;
            match expect[t] {
                None => {
                    if p.size_bytes != 0 {
                        errs.push(format!(
                            "unused tensor `{name}` takes {} bytes",
                            p.size_bytes
                        ));
                    }
                    continue;
                }
                Some(iv) => {
                    if p.interval() != iv {
                        errs.push(format!(
                            "`{name}` placed live over steps {}..={}, but is live over {}..={}",
                            p.first_step, p.last_step, iv.first, iv.last
                        ));
                    }
                }
            }
            let size = info.len() as u64 * F32 * b;
            if p.size_bytes != size {
                errs.push(format!("`{name}` is {} bytes, not {size}", p.size_bytes));
            }
            if p.offset_bytes % align != 0 {
                errs.push(format!(
                    "`{name}` at offset {} is not {align}-byte aligned",
                    p.offset_bytes
                ));
            }
            if p.end_bytes() > self.arena_bytes {
                errs.push(format!(
                    "`{name}` ends at {}, past the arena's {} bytes",
                    p.end_bytes(),
                    self.arena_bytes
                ));
            }
            naive += p.size_bytes;
        }

        // No two simultaneously live tensors overlap in memory.
        let live: Vec<usize> = (0..self.tensors.len().min(expect.len()))
            .filter(|&t| expect[t].is_some() && self.tensors[t].size_bytes > 0)
            .collect();
        for (i, &a) in live.iter().enumerate() {
            for &c in &live[i + 1..] {
                let (pa, pc) = (&self.tensors[a], &self.tensors[c]);
                if pa.interval().intersects(&pc.interval())
                    && pa.offset_bytes < pc.end_bytes()
                    && pc.offset_bytes < pa.end_bytes()
                {
                    errs.push(format!(
                        "`{}` [{}, {}) steps {}..={} overlaps `{}` [{}, {}) steps {}..={}",
                        graph.tensors[a].name,
                        pa.offset_bytes,
                        pa.end_bytes(),
                        pa.first_step,
                        pa.last_step,
                        graph.tensors[c].name,
                        pc.offset_bytes,
                        pc.end_bytes(),
                        pc.first_step,
                        pc.last_step
                    ));
                }
            }
        }

        // Memory figures.
        let lower = (0..n_steps)
            .map(|s| {
                live.iter()
                    .filter(|&&t| self.tensors[t].interval().contains(s))
                    .map(|&t| self.tensors[t].size_bytes)
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0);
        if self.naive_bytes != naive {
            errs.push(format!("naive_bytes {} != {naive}", self.naive_bytes));
        }
        if self.lower_bound_bytes != lower {
            errs.push(format!(
                "lower_bound_bytes {} != {lower}",
                self.lower_bound_bytes
            ));
        }
        let arena_end = self
            .tensors
            .iter()
            .map(|p| p.end_bytes())
            .max()
            .unwrap_or(0);
        if self.arena_bytes != arena_end {
            errs.push(format!(
                "arena_bytes {} but the highest tensor ends at {arena_end}",
                self.arena_bytes
            ));
        }
        if self.arena_bytes < self.lower_bound_bytes {
            errs.push("arena smaller than the lower bound".into());
        }
        if self.arena_bytes > limits.max_arena_bytes() {
            errs.push(format!(
                "arena of {} bytes exceeds the device's {}",
                self.arena_bytes,
                limits.max_arena_bytes()
            ));
        }

        // Weights.
        if self.weights.len() != graph.ops.len() {
            errs.push(format!(
                "{} weight slots for {} ops",
                self.weights.len(),
                graph.ops.len()
            ));
        }
        let mut per_buffer: Vec<Vec<(u64, u64, &str)>> =
            vec![Vec::new(); self.weight_buffers.len()];
        let mut total = 0u64;
        for (slot, op) in self.weights.iter().zip(&graph.ops) {
            let size = op.constants_len() as u64 * F32;
            if slot.size_bytes != size {
                errs.push(format!(
                    "op `{}`: slot of {} bytes, not {size}",
                    op.name(),
                    slot.size_bytes
                ));
            }
            if size == 0 {
                continue;
            }
            total += slot.size_bytes;
            if slot.offset_bytes % align != 0 {
                errs.push(format!("op `{}`: slot offset not aligned", op.name()));
            }
            if slot.size_bytes > limits.max_binding_bytes {
                errs.push(format!(
                    "op `{}`: slot exceeds the binding limit",
                    op.name()
                ));
            }
            match self.weight_buffers.get(slot.buffer) {
                None => errs.push(format!("op `{}`: no buffer {}", op.name(), slot.buffer)),
                Some(&len) => {
                    if slot.offset_bytes + slot.size_bytes > len {
                        errs.push(format!(
                            "op `{}`: slot past the end of its buffer",
                            op.name()
                        ));
                    }
                    per_buffer[slot.buffer].push((
                        slot.offset_bytes,
                        slot.offset_bytes + slot.size_bytes,
                        op.name(),
                    ));
                }
            }
        }
        for (i, slots) in per_buffer.iter_mut().enumerate() {
            slots.sort_unstable();
            for w in slots.windows(2) {
                if w[0].1 > w[1].0 {
                    errs.push(format!(
                        "weight slots of `{}` and `{}` overlap",
                        w[0].2, w[1].2
                    ));
                }
            }
            if self.weight_buffers[i] > limits.max_buffer_bytes {
                errs.push(format!("weight buffer {i} exceeds the buffer limit"));
            }
            if slots.is_empty() {
                errs.push(format!("weight buffer {i} is empty"));
            }
        }
        if self.weights_bytes != total {
            errs.push(format!("weights_bytes {} != {total}", self.weights_bytes));
        }

        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("\n"))
        }
    }
}
