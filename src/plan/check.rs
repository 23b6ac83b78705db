//! The plan's invariants, checked from scratch against the graph: what every test runs on every
//! plan it makes (and what a session may assert in debug builds).

use super::arena::{Interval, PHASES};
use super::{Dtype, Limits, Plan, op_kind, scratch_for, tensor_dtypes, weights};
use crate::graph::{Graph, Op};

impl Plan {
    /// Checks the plan against `graph` and `limits`; the error lists every violation found.
    ///
    /// * one step per op, in order, with the sub-batch's shapes and MACs;
    /// * every tensor sized for `batch` images, at an aligned offset inside the arena, live
    ///   exactly from its writer (step 0 for the input) to its last reader (the last step for
    ///   logits and features), in phases (a Winograd conv's input dies after its first phase,
    ///   its output is born in its last, its scratch lives across two);
    /// * no two tensors live at a common phase share a byte;
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
            if s.macs_executed != s.conv.map_or(s.macs, |c| c.macs_executed()) {
                errs.push(format!("step {i} ({}): wrong executed MACs", s.name));
            }
        }
        // The scratch of phased steps, recomputed: what `scratch_for` says each step's
        // algorithm needs, in step order, each step pointing at its own.
        let mut expected_scratch = Vec::new();
        for (i, (s, op)) in self.steps.iter().zip(&graph.ops).enumerate() {
            let want = match op {
                Op::Conv(c) => scratch_for(c, s.algo(), &graph.tensors, self.precision, i),
                _ => Vec::new(),
            };
            let ids: Vec<usize> = (0..want.len())
                .map(|j| graph.tensors.len() + expected_scratch.len() + j)
                .collect();
            if s.scratch != ids {
                errs.push(format!(
                    "step {i} ({}): scratch tensors {:?}, expected {ids:?}",
                    s.name, s.scratch
                ));
            }
            expected_scratch.extend(want);
        }
        if self.scratch != expected_scratch {
            errs.push(format!(
                "scratch tensors {:?}, expected {:?}",
                self.scratch.iter().map(|s| &s.name).collect::<Vec<_>>(),
                expected_scratch.iter().map(|s| &s.name).collect::<Vec<_>>()
            ));
        }

        // Liveness, recomputed in phases: from the writer's first phase (its last for a phased
        // step, whose last dispatch writes the output) to the last reader's last phase (its
        // first for a phased step reading the tensor only as its input: its first dispatch
        // does); logits and features to the end.
        let last_phase = PHASES - 1;
        let phased_at = |step: usize| self.steps.get(step).is_some_and(|s| s.algo().phased());
        let mut expect: Vec<Option<Interval>> = vec![None; graph.tensors.len()];
        expect[graph.input] = Some(Interval { first: 0, last: 0 });
        for (step, op) in graph.ops.iter().enumerate() {
            let born = step * PHASES + if phased_at(step) { last_phase } else { 0 };
            for t in op.outputs() {
                expect[t] = Some(Interval {
                    first: born,
                    last: born,
                });
            }
        }
        for (step, op) in graph.ops.iter().enumerate() {
            for t in op.inputs() {
                let input_only = match op {
                    Op::Conv(c) => {
                        c.input == t && c.residual.as_ref().is_none_or(|r| r.tensor != t)
                    }
                    _ => false,
                };
                let read = step * PHASES
                    + if phased_at(step) && input_only {
                        0
                    } else {
                        last_phase
                    };
                if let Some(iv) = &mut expect[t] {
                    iv.last = iv.last.max(read);
                }
            }
        }
        for t in std::iter::once(graph.logits).chain(graph.features.iter().map(|f| f.1)) {
            if let Some(iv) = &mut expect[t] {
                iv.last = n_steps * PHASES - 1;
            }
        }
        for sc in &expected_scratch {
            expect.push(Some(Interval {
                first: sc.step * PHASES + sc.phases.0,
                last: sc.step * PHASES + sc.phases.1,
            }));
        }
        if self.tensors.len() != graph.tensors.len() + self.scratch.len() {
            errs.push(format!(
                "{} placements for {} tensors and {} scratch",
                self.tensors.len(),
                graph.tensors.len(),
                self.scratch.len()
            ));
        }
        let mut naive = 0u64;
        let dtypes = tensor_dtypes(graph, self.precision);
        for (t, p) in self.tensors.iter().enumerate() {
            let name = &self.tensor_name(graph, t);
            let (elems, dtype) = match graph.tensors.get(t) {
                Some(info) => (info.len() as u64, dtypes[t]),
                None => match expected_scratch.get(t - graph.tensors.len()) {
                    Some(sc) => (sc.elems_per_image, sc.dtype),
                    None => continue, // reported above
                },
            };
            if p.dtype != dtype {
                errs.push(format!(
                    "`{name}` is {}, not {}",
                    p.dtype.name(),
                    dtype.name()
                ));
            }
            match expect.get(t).copied().flatten() {
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
                    if p.phases != iv {
                        errs.push(format!(
                            "`{name}` placed live over phases {}..={}, but is live over {}..={}",
                            p.phases.first, p.phases.last, iv.first, iv.last
                        ));
                    }
                    if (p.first_step, p.last_step) != (iv.first / PHASES, iv.last / PHASES) {
                        errs.push(format!(
                            "`{name}` placed live over steps {}..={}, but is live over {}..={}",
                            p.first_step,
                            p.last_step,
                            iv.first / PHASES,
                            iv.last / PHASES
                        ));
                    }
                }
            }
            let size = elems * dtype.bytes() * b;
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
                if pa.phases.intersects(&pc.phases)
                    && pa.offset_bytes < pc.end_bytes()
                    && pc.offset_bytes < pa.end_bytes()
                {
                    errs.push(format!(
                        "`{}` [{}, {}) phases {}..={} overlaps `{}` [{}, {}) phases {}..={}",
                        self.tensor_name(graph, a),
                        pa.offset_bytes,
                        pa.end_bytes(),
                        pa.phases.first,
                        pa.phases.last,
                        self.tensor_name(graph, c),
                        pc.offset_bytes,
                        pc.end_bytes(),
                        pc.phases.first,
                        pc.phases.last
                    ));
                }
            }
        }

        // Memory figures.
        let lower = (0..n_steps * PHASES)
            .map(|s| {
                live.iter()
                    .filter(|&&t| self.tensors[t].phases.contains(s))
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
        if self.transform_weights.len() != graph.ops.len() {
            errs.push(format!(
                "{} transform weight slots for {} ops",
                self.transform_weights.len(),
                graph.ops.len()
            ));
        }
        let mut per_buffer: Vec<Vec<(u64, u64, &str)>> =
            vec![Vec::new(); self.weight_buffers.len()];
        let mut total = 0u64;
        // Every slot with the element count its holding calls for: the whole constants, or a
        // split Winograd conv's U and the rest.
        let mut slots = Vec::new();
        for (i, ((&slot, op), step)) in self
            .weights
            .iter()
            .zip(&graph.ops)
            .zip(&self.steps)
            .enumerate()
        {
            let transform = self.transform_weights.get(i).copied().flatten();
            let split = weights::Holding::of(step.conv) == weights::Holding::SplitWinograd;
            if split != transform.is_some() {
                errs.push(format!(
                    "op `{}`: {} transforms' slot",
                    op.name(),
                    if split { "no" } else { "an unneeded" }
                ));
            }
            let holding = if transform.is_some() {
                weights::Holding::SplitWinograd
            } else {
                weights::Holding::Bound
            };
            let (main, rest) = weights::slot_lens(op, step.winograd(), holding);
            slots.push((slot, main, op));
            if let Some(t) = transform {
                slots.push((t, rest, op));
            }
        }
        for (slot, len, op) in slots {
            let size = weights::slot_bytes(len, self.precision);
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

        // Every planned sub-batch size: ascending, the full one last with the steps' own
        // convs, each smaller one the same pipeline at its own size.
        let sizes: Vec<usize> = self.sub_batch_sizes.iter().map(|s| s.images).collect();
        if sizes.last() != Some(&self.batch)
            || sizes.windows(2).any(|w| w[0] >= w[1])
            || sizes.first() == Some(&0)
        {
            errs.push(format!(
                "sub-batch sizes {sizes:?} for a sub-batch of {}",
                self.batch
            ));
        }
        if !self.requested_batch.is_multiple_of(self.batch)
            && !sizes.contains(&(self.requested_batch % self.batch))
        {
            errs.push(format!(
                "the trailing sub-batch of {} images is not planned",
                self.requested_batch % self.batch
            ));
        }
        for sub in &self.sub_batch_sizes {
            if sub.convs.len() != self.steps.len() {
                errs.push(format!(
                    "sub-batch {}: {} conv plans for {} steps",
                    sub.images,
                    sub.convs.len(),
                    self.steps.len()
                ));
            }
            for ((s, op), cp) in self.steps.iter().zip(&graph.ops).zip(&sub.convs) {
                let ok = match (op, s.conv, cp) {
                    (Op::Conv(_), Some(full), Some(cp)) if sub.images == self.batch => *cp == full,
                    (Op::Conv(c), Some(full), Some(cp)) => {
                        super::kernel::conv_for_batch(&full, c, &graph.tensors, sub.images)
                            .is_ok_and(|want| want == *cp)
                    }
                    (Op::Conv(_), _, _) => false,
                    (_, _, cp) => cp.is_none(),
                };
                if !ok {
                    errs.push(format!(
                        "sub-batch {}: step {} has another conv plan than its size's",
                        sub.images, s.name
                    ));
                }
            }
        }
        // The launches are rebuilt from the steps and conv plans: only from consistent ones
        // (the builders assert what the checks above report).
        if errs.is_empty() {
            self.check_launches(graph, limits, &mut errs);
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("\n"))
        }
    }

    /// The launches: rebuilt from the graph and the plan, they are the same; each size's
    /// range holds its own launches, every step of it in order; every binding is the step's
    /// own weight slot or a texture the plan sizes; grids, copies, features, storage buffers
    /// and workgroup memory within the device's limits.
    fn check_launches(&self, graph: &Graph, limits: &Limits, errs: &mut Vec<String>) {
        let (launches, ranges, textures) = super::launch::build(graph, self, limits);
        if launches != self.launches {
            errs.push(format!(
                "the launches differ from the ones the plan makes ({} planned, {} rebuilt)",
                self.launches.len(),
                launches.len()
            ));
        }
        if textures != self.textures {
            errs.push("the textures differ from the ones the launches read".into());
        }
        let ranges_ok = self.sub_batch_sizes.iter().map(|s| &s.launches).eq(&ranges)
            && ranges.first().is_none_or(|r| r.start == 0)
            && ranges.windows(2).all(|w| w[0].end == w[1].start)
            && ranges.last().is_none_or(|r| r.end == self.launches.len());
        if !ranges_ok {
            errs.push("the sub-batch sizes' launch ranges do not tile the launches".into());
        }
        if !self
            .textures
            .fit(&self.weight_buffers, self.precision.dtype(), limits)
        {
            errs.push("a texture exceeds the device's largest texture".into());
        }
        if limits.max_storage_buffers_per_stage < 2 {
            errs.push("every launch binds two storage buffers; the device allows fewer".into());
        }
        for sub in &self.sub_batch_sizes {
            let Some(mine) = self.launches.get(sub.launches.clone()) else {
                continue;
            };
            let steps: Vec<usize> = mine.iter().map(|l| l.step).collect();
            let every_step = steps.first() == Some(&0)
                && steps.windows(2).all(|w| w[1] == w[0] || w[1] == w[0] + 1)
                && steps.last() == Some(&(self.steps.len() - 1));
            if !every_step {
                errs.push(format!(
                    "sub-batch {}: the launches do not run every step once, in order",
                    sub.images
                ));
            }
            for l in mine {
                let at = format!("sub-batch {} launch `{}`", sub.images, l.label);
                if l.sub_batch != sub.images {
                    errs.push(format!("{at}: belongs to sub-batch {}", l.sub_batch));
                }
                if l.workgroups
                    .iter()
                    .any(|&g| g == 0 || g > limits.max_workgroups_per_dimension)
                {
                    errs.push(format!(
                        "{at}: grid {:?} outside the device's",
                        l.workgroups
                    ));
                }
                if !limits.features.contains(l.pipeline.shader.features()) {
                    errs.push(format!("{at}: needs features the device lacks"));
                }
                if l.uniform.is_empty() || !l.uniform.len().is_multiple_of(16) {
                    errs.push(format!("{at}: a uniform of {} bytes", l.uniform.len()));
                }
                if l.bindings.len() != l.pipeline.bindings.extra() {
                    errs.push(format!("{at}: bindings for another layout"));
                }
                for r in &l.bindings {
                    let ok = match *r {
                        super::Resource::Weights(w) => {
                            self.weights.get(l.step) == Some(&w)
                                || self.transform_weights.get(l.step) == Some(&Some(w))
                        }
                        super::Resource::NoWeights => true,
                        super::Resource::WeightsTexture(b) => {
                            self.textures.weights.get(b) == Some(&true)
                        }
                        super::Resource::StagingTexture(Dtype::F32) => {
                            self.textures.staging_f32 > 0
                        }
                        super::Resource::PackTarget { texels } => {
                            self.textures.staging_f32 >= texels
                        }
                        super::Resource::StagingTexture(Dtype::F16) => {
                            self.textures.staging_f16 > 0
                        }
                    };
                    if !ok {
                        errs.push(format!("{at}: binds {r:?}, which the plan does not hold"));
                    }
                }
                if let Some(c) = l.copy_before {
                    let bytes = c.texels * super::Textures::texel_bytes(c.dtype);
                    let room = match c.dtype {
                        Dtype::F32 => self.textures.staging_f32,
                        Dtype::F16 => self.textures.staging_f16,
                    };
                    if c.offset_bytes + bytes > self.arena_bytes || c.texels > room {
                        errs.push(format!("{at}: its texture copy is out of bounds"));
                    }
                }
            }
        }
        for s in &self.steps {
            if let Some(c) = s.conv
                && c.gemm.variant == super::ConvVariant::Shared
            {
                let t = c.gemm.shared_tile();
                let bytes = (t.bm() * t.bk / 4 + t.bk * t.bn4()) * 16;
                if bytes > limits.max_workgroup_storage_bytes {
                    errs.push(format!(
                        "step {}: the shared tile needs {bytes} bytes of workgroup memory",
                        s.name
                    ));
                }
            }
        }
    }
}
