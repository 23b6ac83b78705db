//! The plan as JSON (for tools) and as a readable table (for `--verbose` and reports).

use super::Plan;
use crate::graph::Graph;
use serde_json::{Value, json};
use std::fmt::Write;

const MIB: f64 = (1u64 << 20) as f64;

impl Plan {
    /// The plan as JSON. `batch` is the requested batch, `sub_batch` the images per pass
    /// (what the arena is sized for); MACs of dispatches are per sub-batch.
    pub fn to_json(&self, graph: &Graph) -> Value {
        let tname = |t: usize| graph.tensors[t].name.clone();
        let dispatches: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                let op = &graph.ops[s.op];
                let w = &self.weights[s.op];
                json!({
                    "name": s.name,
                    "kind": s.kind,
                    "output_shape": s.output_shape,
                    "macs": s.macs,
                    "macs_executed": s.macs_executed,
                    "kernel": s.conv.map(|cp| {
                        let c = cp.gemm;
                        json!({
                            "algorithm": cp.algo.name(),
                            "origin": cp.origin.name(),
                            "variant": c.variant.name(),
                            "workgroup_size": c.wg,
                            "tile_m": c.tile_m,
                            "tile_n": 4 * c.tile_n4,
                            "pixels_per_invocation": c.rows,
                            "describe": cp.describe(),
                            "vec4": c.vec4,
                            "is_1x1": c.is_1x1,
                            "bounds_checks": c.checks,
                            "m_fastest": c.m_fastest,
                            "gemm_mnk": [c.m, c.n, c.k],
                            "gemms": c.gemms,
                            "workgroups": c.tiles * c.gemms * c.splits,
                            "outputs_per_invocation": [c.rows, 4 * c.cols4],
                            "k_step": c.k_step,
                            "splits": c.splits,
                        })
                    }),
                    "scratch": s.scratch.iter().map(|&t| json!({
                        "name": self.tensor_name(graph, t),
                        "offset_bytes": self.tensors[t].offset_bytes,
                        "size_bytes": self.tensors[t].size_bytes,
                    })).collect::<Vec<_>>(),
                    "inputs": op.inputs().into_iter().map(tname).collect::<Vec<_>>(),
                    "outputs": op.outputs().into_iter().map(tname).collect::<Vec<_>>(),
                    "output_offset_bytes": self.tensors[op.outputs()[0]].offset_bytes,
                    "weights": {
                        "buffer": w.buffer,
                        "offset_bytes": w.offset_bytes,
                        "size_bytes": w.size_bytes,
                    },
                    "transform_weights": self.transform_weights[s.op].map(|t| json!({
                        "buffer": t.buffer,
                        "offset_bytes": t.offset_bytes,
                        "size_bytes": t.size_bytes,
                    })),
                })
            })
            .collect();
        let tensors: Vec<Value> = self
            .tensors
            .iter()
            .enumerate()
            .map(|(id, p)| {
                let shape = match graph.tensors.get(id) {
                    Some(t) => json!([self.batch, t.h, t.w, t.c]),
                    None => json!([
                        self.batch,
                        self.scratch[id - graph.tensors.len()].elems_per_image
                    ]),
                };
                json!({
                    "id": id,
                    "name": self.tensor_name(graph, id),
                    "shape": shape,
                    "dtype": p.dtype.name(),
                    "offset_bytes": p.offset_bytes,
                    "size_bytes": p.size_bytes,
                    "first_step": p.first_step,
                    "last_step": p.last_step,
                    "phases": [p.phases.first, p.phases.last],
                })
            })
            .collect();
        json!({
            "batch": self.requested_batch,
            "sub_batch": self.batch,
            "sub_batches": self.sub_batches(),
            "sub_batch_sizes": self.sub_batch_sizes.iter().map(|s| s.images).collect::<Vec<_>>(),
            "precision": self.precision.name(),
            "macs_per_image": graph.macs_per_image(),
            "macs_executed_per_image": self.macs_executed_per_image(),
            "weights_bytes": self.weights_bytes,
            "weight_buffers": self.weight_buffers,
            "arena_bytes": self.arena_bytes,
            "naive_bytes": self.naive_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "arena_over_lower_bound": self.arena_ratio(),
            "input": tname(graph.input),
            "logits": tname(graph.logits),
            "features": graph.features.iter().map(|(n, t)| json!({"name": n, "tensor": tname(*t)})).collect::<Vec<_>>(),
            "dispatches": dispatches,
            "tensors": tensors,
            "pipelines": self.pipelines().iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            "textures": {
                "staging_f32_texels": self.textures.staging_f32,
                "staging_f16_texels": self.textures.staging_f16,
                "weight_buffers_copied": self.textures.weights,
            },
            "resident_weight_bytes": self.resident_weight_bytes(),
            "resident_bytes": self.resident_bytes(),
            "launches": self.launches.iter().map(|l| json!({
                "sub_batch": l.sub_batch,
                "step": l.step,
                "label": l.label,
                "pipeline": l.pipeline.to_string(),
                "workgroups": l.workgroups,
                "uniform_bytes": l.uniform.len(),
                "bindings": l.bindings.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>(),
                "copy_before": l.copy_before.map(|c| json!({
                    "offset_bytes": c.offset_bytes,
                    "texels": c.texels,
                    "dtype": c.dtype.name(),
                })),
            })).collect::<Vec<_>>(),
        })
    }

    /// A tensor's name: the graph's, or the scratch tensor's.
    pub fn tensor_name(&self, graph: &Graph, t: usize) -> String {
        match graph.tensors.get(t) {
            Some(info) => info.name.clone(),
            None => self.scratch[t - graph.tensors.len()].name.clone(),
        }
    }

    /// A dispatch table (name, kind, output NHWC, MMACs, arena offset of the output) and a
    /// memory summary.
    pub fn describe(&self, graph: &Graph) -> String {
        let mut s = String::new();
        let name_w = self
            .steps
            .iter()
            .map(|st| st.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let _ = writeln!(
            s,
            "{:>4}  {:<name_w$}  {:<15}  {:>22}  {:>10}  {:>14}  kernel",
            "#", "name", "kind", "output NHWC", "MMACs", "out offset MiB"
        );
        for st in &self.steps {
            let out = graph.ops[st.op].outputs()[0];
            let [n, h, w, c] = st.output_shape;
            let line = format!(
                "{:>4}  {:<name_w$}  {:<15}  {:>22}  {:>10.1}  {:>14.2}  {}",
                st.op,
                st.name,
                st.kind,
                format!("{n}x{h}x{w}x{c}"),
                st.macs as f64 / 1e6,
                self.tensors[out].offset_bytes as f64 / MIB,
                st.conv
                    .map(|c| format!(
                        "{} ({} wg, {})",
                        c.describe(),
                        c.gemm.tiles * c.gemm.gemms * c.gemm.splits,
                        c.origin.name()
                    ))
                    .unwrap_or_default(),
            );
            let _ = writeln!(s, "{}", line.trim_end());
        }
        let total_macs: u64 = self.steps.iter().map(|s| s.macs).sum();
        let _ = writeln!(
            s,
            "{} steps, {:.2} GMACs per image ({:.2} executed), {}, batch {} as {} sub-batch(es) of {}",
            self.steps.len(),
            graph.macs_per_image() as f64 / 1e9,
            self.macs_executed_per_image() as f64 / 1e9,
            self.precision.name(),
            self.requested_batch,
            self.sub_batches(),
            self.batch,
        );
        let _ = writeln!(
            s,
            "sub-batch sizes planned: {}",
            self.sub_batch_sizes
                .iter()
                .map(|s| s.images.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            s,
            "activations: arena {:.1} MiB, naive {:.1} MiB, lower bound {:.1} MiB \
             (arena / lower bound {:.3}, arena / naive {:.3}); {:.1} GMACs per sub-batch",
            self.arena_bytes as f64 / MIB,
            self.naive_bytes as f64 / MIB,
            self.lower_bound_bytes as f64 / MIB,
            self.arena_ratio(),
            self.arena_bytes as f64 / self.naive_bytes.max(1) as f64,
            total_macs as f64 / 1e9,
        );
        let _ = writeln!(
            s,
            "weights: {:.1} MiB in {} buffer(s) ({:.1} MiB with alignment padding), {:.1} MiB \
             resident",
            self.weights_bytes as f64 / MIB,
            self.weight_buffers.len(),
            self.weight_buffers.iter().sum::<u64>() as f64 / MIB,
            self.resident_weight_bytes() as f64 / MIB,
        );
        let _ = writeln!(
            s,
            "launches: {} over {} sub-batch size(s), {} distinct pipelines; {:.1} MiB resident \
             in all",
            self.launches.len(),
            self.sub_batch_sizes.len(),
            self.pipelines().len(),
            self.resident_bytes() as f64 / MIB,
        );
        s
    }
}
