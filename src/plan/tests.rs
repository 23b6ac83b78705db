use super::*;
use crate::graph::{
    BnRelu, ConvOp, GlobalAvgPoolOp, MaxPoolOp, PadValue, Residual, SplitOutput, TensorId,
    TensorInfo,
};
use crate::winograd::Tile;

/// The planner with every conv direct: these tests are about liveness, offsets and weights,
/// not about Winograd's scratch (see `winograd_scratch_*`).
fn plan_direct(graph: &Graph, batch: usize, limits: &Limits) -> Result<Plan> {
    let device = DeviceProfile {
        winograd: WinogradPolicy::Off,
        ..DeviceProfile::gpu()
    };
    plan_for(graph, batch, limits, &device)
}

/// The planner with the kernel choices of `device`.
fn plan_for(graph: &Graph, batch: usize, limits: &Limits, device: &DeviceProfile) -> Result<Plan> {
    let opts = PlanOptions {
        device: *device,
        ..Default::default()
    };
    plan_with(graph, batch, limits, &opts)
}

/// A tiny graph builder: tensors and ops appended in order.
struct G(Graph);

impl G {
    fn new(h: usize, w: usize, c: usize) -> G {
        let input = TensorInfo {
            name: "input".into(),
            h,
            w,
            c,
        };
        G(Graph {
            tensors: vec![input],
            ops: Vec::new(),
            input: 0,
            logits: 0,
            features: Vec::new(),
        })
    }

    fn t(&mut self, name: &str, h: usize, w: usize, c: usize) -> TensorId {
        self.0.tensors.push(TensorInfo {
            name: name.into(),
            h,
            w,
            c,
        });
        self.0.tensors.len() - 1
    }

    /// A `k x k / stride` conv to a new tensor of `cout` channels.
    fn conv(
        &mut self,
        name: &str,
        input: TensorId,
        k: usize,
        stride: usize,
        cout: usize,
    ) -> TensorId {
        let i = self.0.tensors[input].clone();
        let (h, w) = ((i.h - 1) / stride + 1, (i.w - 1) / stride + 1);
        let out = self.t(name, h, w, cout);
        self.0.ops.push(Op::Conv(ConvOp {
            name: name.into(),
            input,
            output: out,
            kh: k,
            kw: k,
            stride,
            pad: k / 2,
            cin: i.c,
            cout,
            weight: vec![0.0; k * k * i.c * cout],
            bias: vec![0.0; cout],
            in_act: None,
            residual: None,
            relu: true,
            split: None,
        }));
        out
    }

    fn last_conv(&mut self) -> &mut ConvOp {
        match self.0.ops.last_mut() {
            Some(Op::Conv(c)) => c,
            _ => panic!("last op is not a conv"),
        }
    }

    fn residual(&mut self, r: TensorId) {
        self.last_conv().residual = Some(Residual {
            tensor: r,
            stride: 1,
        });
    }

    /// Splits the last conv's output channels at `at`: returns the second tensor.
    fn split(&mut self, at: usize) -> TensorId {
        let (out, cout) = {
            let c = self.last_conv();
            (c.output, c.cout)
        };
        let o = self.0.tensors[out].clone();
        self.0.tensors[out].c = at;
        let s = self.t(&format!("{}_split", o.name), o.h, o.w, cout - at);
        self.last_conv().split = Some(SplitOutput {
            at,
            tensor: s,
            relu: false,
        });
        s
    }

    fn pool(&mut self, name: &str, input: TensorId) -> TensorId {
        let c = self.0.tensors[input].c;
        let out = self.t(name, 1, 1, c);
        self.0.ops.push(Op::GlobalAvgPool(GlobalAvgPoolOp {
            name: name.into(),
            input,
            output: out,
            in_act: Some(BnRelu {
                scale: vec![1.0; c],
                shift: vec![0.0; c],
            }),
        }));
        out
    }

    fn max_pool(&mut self, name: &str, input: TensorId) -> TensorId {
        let i = self.0.tensors[input].clone();
        let out = self.t(name, i.h.div_ceil(2), i.w.div_ceil(2), i.c);
        self.0.ops.push(Op::MaxPool(MaxPoolOp {
            name: name.into(),
            input,
            output: out,
            size: 3,
            stride: 2,
            pad_top: 1,
            pad_left: 1,
            pad_value: PadValue::NegInf,
        }));
        out
    }

    fn done(mut self, logits: TensorId) -> Graph {
        self.0.logits = logits;
        self.0
    }
}

fn checked(g: &Graph, batch: usize, limits: &Limits) -> Plan {
    let p = plan_direct(g, batch, limits).unwrap();
    if let Err(e) = p.check(g, limits) {
        panic!("invalid plan:\n{e}\n{}", p.describe(g));
    }
    p
}

/// input -> a -> b -> c -> pool -> logits, all `hw x hw x 16` (`hw * hw * 64` bytes per image).
fn chain(hw: usize) -> Graph {
    let mut g = G::new(hw, hw, 16);
    let a = g.conv("a", 0, 3, 1, 16);
    let b = g.conv("b", a, 3, 1, 16);
    let c = g.conv("c", b, 3, 1, 16);
    let p = g.pool("pool", c);
    let l = g.conv("logits", p, 1, 1, 10);
    g.done(l)
}

#[test]
fn a_chain_ping_pongs_between_two_slots() {
    let g = chain(8);
    let p = checked(&g, 2, &Limits::unlimited());
    let iv: Vec<_> = p
        .tensors
        .iter()
        .map(|t| (t.first_step, t.last_step))
        .collect();
    assert_eq!(iv, [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4), (4, 4)]);
    let map = 8 * 8 * 16 * 4 * 2;
    assert_eq!(p.lower_bound_bytes, 2 * map);
    assert_eq!(p.arena_bytes, 2 * map);
    assert_eq!(p.naive_bytes, 4 * map + 2 * (16 + 10) * 4);
    assert_eq!(p.steps[1].output_shape, [2, 8, 8, 16]);
    assert_eq!(p.steps[1].macs, 2 * 64 * 9 * 16 * 16);
    assert_eq!(p.steps[3].kind, "global_avg_pool");
    assert_eq!(p.sub_batches(), 1);
}

#[test]
fn a_residual_diamond_keeps_its_shortcut_alive() {
    let mut g = G::new(8, 8, 32);
    let x = g.conv("stem", 0, 3, 1, 32);
    let t1 = g.conv("c1", x, 1, 1, 8);
    let t2 = g.conv("c2", t1, 3, 1, 8);
    let y = g.conv("c3", t2, 1, 1, 32);
    g.residual(x);
    let p = g.pool("pool", y);
    let g = g.done(p);
    let plan = checked(&g, 1, &Limits::unlimited());
    assert_eq!(
        (plan.tensors[x].first_step, plan.tensors[x].last_step),
        (0, 3)
    );
    // At c3: x, t2 and y are live: 8 KiB + 2 KiB + 8 KiB.
    assert_eq!(plan.lower_bound_bytes, (8192 + 2048 + 8192) as u64);
    assert_eq!(plan.arena_bytes, plan.lower_bound_bytes);
}

#[test]
fn split_outputs_and_features_live_as_long_as_needed() {
    let mut g = G::new(8, 8, 16);
    let pre = g.conv("stem", 0, 3, 1, 16);
    let t1 = g.conv("c1_proj", pre, 1, 1, 8 + 64);
    let proj = g.split(8);
    let t2 = g.conv("c2", t1, 3, 1, 8);
    let y = g.conv("c3", t2, 1, 1, 64);
    g.residual(proj);
    let p = g.pool("pool", y);
    let l = g.conv("logits", p, 1, 1, 10);
    let mut g = g.done(l);
    g.features = vec![("feat/stem".into(), pre), ("feat/unit".into(), y)];
    let plan = checked(&g, 3, &Limits::unlimited());
    let last = g.ops.len() - 1;
    assert_eq!(
        (plan.tensors[proj].first_step, plan.tensors[proj].last_step),
        (1, 3)
    );
    assert_eq!(
        (plan.tensors[pre].first_step, plan.tensors[pre].last_step),
        (0, last)
    );
    assert_eq!(plan.tensors[y].last_step, last);
    assert_eq!(plan.tensors[l].last_step, last);
    assert_eq!(plan.tensors[t1].size_bytes, 3 * 8 * 8 * 8 * 4);
    assert!(plan.arena_bytes <= plan.lower_bound_bytes * 11 / 10);
}

#[test]
fn offsets_are_aligned_even_for_odd_sizes() {
    let mut g = G::new(5, 5, 3);
    let mut t = 0;
    for i in 0..6 {
        t = g.conv(&format!("c{i}"), t, 3, 1, 3 + i);
    }
    let p0 = g.max_pool("mp", t);
    let l = g.pool("pool", p0);
    let g = g.done(l);
    for align in [256, 512, 1000] {
        let limits = Limits {
            storage_offset_alignment: align,
            ..Limits::unlimited()
        };
        let p = checked(&g, 3, &limits);
        assert!(p.tensors.iter().all(|t| t.offset_bytes % align == 0));
        assert!(p.weights.iter().all(|w| w.offset_bytes % align == 0));
        assert!(p.tensors.iter().any(|t| t.offset_bytes > 0));
    }
}

#[test]
fn sub_batching_picks_the_largest_sub_batch_that_fits() {
    let g = chain(32);
    let one = checked(&g, 1, &Limits::unlimited()).arena_bytes;
    assert_eq!(one, 2 * 65536);
    for (cap, want) in [
        (3 * one, 3),
        (3 * one + 100, 3),
        (one, 1),
        (7 * one + 65535, 7),
    ] {
        let limits = Limits {
            max_binding_bytes: cap,
            ..Limits::unlimited()
        };
        let p = checked(&g, 10, &limits);
        assert_eq!(p.batch, want, "cap {cap}");
        assert_eq!(p.requested_batch, 10);
        assert_eq!(p.sub_batches(), 10usize.div_ceil(want));
        assert!(p.arena_bytes <= cap);
        assert_eq!(p.steps[0].output_shape[0], want);
        // The buffer limit counts too.
        let limits = Limits {
            max_buffer_bytes: cap,
            ..Limits::unlimited()
        };
        assert_eq!(checked(&g, 10, &limits).batch, want);
    }
    // A batch that fits is never split, nor grown.
    let limits = Limits {
        max_binding_bytes: 3 * one,
        ..Limits::unlimited()
    };
    assert_eq!(checked(&g, 2, &limits).batch, 2);
}

#[test]
fn one_image_too_big_is_an_error_that_says_what_to_do() {
    let g = chain(8);
    let limits = Limits {
        max_binding_bytes: 4096,
        ..Limits::unlimited()
    };
    match plan_direct(&g, 4, &limits) {
        Err(Error::DeviceLimits(msg)) => {
            assert!(msg.contains("smaller input size"), "{msg}");
            assert!(msg.contains("8x8"), "{msg}");
            assert!(msg.contains("4096"), "{msg}");
        }
        other => panic!("expected DeviceLimits, got {other:?}"),
    }
}

#[test]
fn weights_are_aligned_and_spill_into_new_buffers() {
    let g = chain(8);
    let sizes: Vec<u64> = g.ops.iter().map(|o| 4 * o.constants_len() as u64).collect();
    // conv a/b/c: 3x3x16x16 + 16 floats (whatever the padding of `constants`): > 9 KiB.
    assert!(
        sizes[..3]
            .iter()
            .all(|&s| s == sizes[0] && s > 9216 && s < 9984)
    );
    assert_eq!(sizes[2 + 1], 2 * 16 * 4); // pool: scale | shift
    let p = checked(&g, 1, &Limits::unlimited());
    assert_eq!(
        p.weights.iter().map(|w| w.size_bytes).collect::<Vec<_>>(),
        sizes
    );
    assert_eq!(p.weight_buffers.len(), 1);
    assert_eq!(p.weights_bytes, sizes.iter().sum::<u64>());
    let next = sizes[0].div_ceil(256) * 256; // 9472 without padding
    assert_eq!(p.weights[1].offset_bytes, next);

    let limits = Limits {
        max_buffer_bytes: 20_000,
        ..Limits::unlimited()
    };
    let p = checked(&g, 1, &limits);
    let at: Vec<(usize, u64)> = p
        .weights
        .iter()
        .map(|w| (w.buffer, w.offset_bytes))
        .collect();
    let after_pool = next + sizes[3].div_ceil(256) * 256;
    assert_eq!(at, [(0, 0), (0, next), (1, 0), (1, next), (1, after_pool)]);
    assert_eq!(p.weight_buffers, [next + sizes[1], after_pool + sizes[4]]);

    let limits = Limits {
        max_binding_bytes: 9000,
        ..Limits::unlimited()
    };
    match plan_direct(&g, 1, &limits) {
        Err(Error::DeviceLimits(msg)) => assert!(msg.contains("`a`"), "{msg}"),
        other => panic!("expected DeviceLimits, got {other:?}"),
    }
}

#[test]
fn malformed_graphs_are_rejected() {
    let mut g = chain(8);
    if let Op::Conv(c) = &mut g.ops[0] {
        c.input = 2; // written by step 1
    }
    assert!(matches!(
        plan_direct(&g, 1, &Limits::unlimited()),
        Err(Error::Input(_))
    ));
    let mut g = chain(8);
    if let Op::Conv(c) = &mut g.ops[1] {
        c.output = 1; // already written by step 0
    }
    assert!(matches!(
        plan_direct(&g, 1, &Limits::unlimited()),
        Err(Error::Input(_))
    ));
    let g = G::new(4, 4, 3).done(0);
    assert!(matches!(
        plan_direct(&g, 1, &Limits::unlimited()),
        Err(Error::Input(_))
    ));
    assert!(matches!(
        plan_direct(&chain(8), 0, &Limits::unlimited()),
        Err(Error::Input(_))
    ));
}

#[test]
fn the_checker_catches_overlaps() {
    let g = chain(8);
    let limits = Limits::unlimited();
    let mut p = checked(&g, 1, &limits);
    p.tensors[2].offset_bytes = p.tensors[1].offset_bytes;
    assert!(p.check(&g, &limits).unwrap_err().contains("overlaps"));
    let mut p = checked(&g, 1, &limits);
    p.tensors[2].offset_bytes += 4;
    assert!(p.check(&g, &limits).is_err());
}

#[test]
fn json_and_table_show_the_dispatches() {
    let g = chain(8);
    let p = checked(&g, 2, &Limits::unlimited());
    let j = p.to_json(&g);
    assert_eq!(j["batch"], 2);
    assert_eq!(j["sub_batch"], 2);
    assert_eq!(j["dispatches"].as_array().unwrap().len(), 5);
    assert_eq!(j["dispatches"][0]["kind"], "conv");
    assert_eq!(j["dispatches"][0]["output_shape"][0], 2);
    assert_eq!(j["tensors"][1]["offset_bytes"], p.tensors[1].offset_bytes);
    for k in [
        "weights_bytes",
        "arena_bytes",
        "naive_bytes",
        "lower_bound_bytes",
        "macs_per_image",
    ] {
        assert!(j[k].is_u64(), "{k}");
    }
    let d = p.describe(&g);
    assert!(d.contains("global_avg_pool") && d.contains("2x8x8x16") && d.contains("lower bound"));
}

#[test]
fn wgpu_limits_are_read_with_a_minimum_alignment() {
    let l = Limits::from_wgpu(
        &wgpu::Limits {
            min_storage_buffer_offset_alignment: 32,
            ..wgpu::Limits::default()
        },
        wgpu::Features::SHADER_F16,
    );
    assert_eq!(l.features, wgpu::Features::SHADER_F16);
    assert_eq!(l.storage_offset_alignment, 256);
    assert_eq!(
        l.max_binding_bytes,
        wgpu::Limits::default().max_storage_buffer_binding_size
    );
    assert_eq!(l.max_buffer_bytes, wgpu::Limits::default().max_buffer_size);
}

/// Winograd convs get their V and M as ordinary planned tensors, live at their step only (V
/// over its first two phases, M over its last two; the conv's input dies after its first
/// phase, its output is born in its last): the checker accepts the plan, the arena stays within 10% of the lower bound, the executed MACs
/// drop by the tile's factor, and the weight slots hold the transformed filters.
#[test]
fn winograd_scratch_is_planned_and_checked() {
    let g = chain(24);
    let limits = Limits::unlimited();
    let p = plan(&g, 2, &limits).unwrap();
    p.check(&g, &limits)
        .unwrap_or_else(|e| panic!("{e}\n{}", p.describe(&g)));
    let tiles = 2 * Tile::F4.tiles(24) * Tile::F4.tiles(24);
    assert_eq!(p.scratch.len(), 6, "V and M of a, b, c");
    for (i, step) in p.steps[..3].iter().enumerate() {
        assert_eq!(step.winograd(), Some(Tile::F4), "{}", step.name);
        let [v, m] = step.scratch[..] else {
            panic!("V and M")
        };
        for t in [v, m] {
            assert_eq!(p.tensors[t].size_bytes, (36 * tiles * 16 * 4) as u64);
            assert_eq!((p.tensors[t].first_step, p.tensors[t].last_step), (i, i));
        }
        let phase = |k: usize| i * PHASES + k;
        let (input, output) = match &g.ops[i] {
            Op::Conv(c) => (c.input, c.output),
            _ => unreachable!(),
        };
        assert_eq!(
            p.tensors[v].phases,
            Interval {
                first: phase(0),
                last: phase(1)
            }
        );
        assert_eq!(
            p.tensors[m].phases,
            Interval {
                first: phase(1),
                last: phase(2)
            }
        );
        assert_eq!(p.tensors[output].phases.first, phase(2));
        assert_eq!(p.tensors[input].phases.last, phase(0));
        // 36 GEMMs of tiles x 16 x 16 instead of 24 * 24 pixels x 144 x 16.
        assert_eq!(step.macs_executed, (36 * tiles * 16 * 16) as u64);
        assert_eq!(step.macs, (2 * 24 * 24 * 144 * 16) as u64);
        assert_eq!(
            p.weights[i].size_bytes,
            (4 * (36 * 16 * 16 + 16)) as u64,
            "U [36][16][16] | bias"
        );
    }
    assert!(p.arena_bytes as f64 <= 1.1 * p.lower_bound_bytes as f64);
    assert!(p.describe(&g).contains("F(4,3)"));
    // The checker recomputes the phases: a Winograd output claimed live from the conv's first
    // phase (or its scratch from the step's start to its end) is caught.
    let out = match &g.ops[1] {
        Op::Conv(c) => c.output,
        _ => unreachable!(),
    };
    let mut bad = p.clone();
    bad.tensors[out].phases.first = PHASES;
    assert!(
        bad.check(&g, &limits)
            .unwrap_err()
            .contains("live over phases")
    );
    let mut bad = p.clone();
    let v = bad.steps[1].scratch[0];
    bad.tensors[v].phases.last = 2 * PHASES - 1;
    assert!(
        bad.check(&g, &limits)
            .unwrap_err()
            .contains("live over phases")
    );
    // f16 plans take F(2,3) (F(4,3)'s rounded filters lose precision), with f16 scratch.
    let opts = PlanOptions {
        precision: Precision::F16,
        ..Default::default()
    };
    let p16 = plan_with(&g, 2, &limits, &opts).unwrap();
    p16.check(&g, &limits).unwrap();
    assert_eq!(p16.steps[0].winograd(), Some(Tile::F2));
    let v = p16.steps[0].scratch[0];
    assert_eq!(p16.tensors[v].dtype, Dtype::F16);
    assert_eq!(p16.tensors[1].dtype, Dtype::F16);
}

/// Where the whole batch fits only without Winograd's scratch, the convs at the peak are
/// computed directly rather than splitting the batch; where it does not fit either way,
/// Winograd stays and the batch is split.
#[test]
fn winograd_gives_way_to_a_whole_batch() {
    let g = chain(24);
    let direct = plan_direct(&g, 8, &Limits::unlimited()).unwrap();
    let wino = plan(&g, 8, &Limits::unlimited()).unwrap();
    assert!(wino.arena_bytes > direct.arena_bytes);
    let mut limits = Limits::unlimited();
    limits.max_binding_bytes = direct.arena_bytes;
    let p = plan(&g, 8, &limits).unwrap();
    p.check(&g, &limits).unwrap();
    assert_eq!(p.batch, 8, "no sub-batches");
    let kept = p.steps.iter().filter(|s| s.winograd().is_some()).count();
    assert!(kept < 3, "{kept} Winograd convs kept");
    limits.max_binding_bytes = direct.arena_bytes / 2;
    let p = plan(&g, 8, &limits).unwrap();
    p.check(&g, &limits).unwrap();
    assert!(p.batch < 8);
    assert_eq!(p.steps.iter().filter(|s| s.winograd().is_some()).count(), 3);
}

/// A tuning table's entries replace the heuristic's kernel where their key matches and the
/// device can run them (a split count turns a direct conv into split K, with its scratch
/// planned); the others keep the heuristic's; every conv says where its choice came from.
#[test]
fn tuned_choices_are_taken_where_they_apply() {
    use super::kernel::{ConvAlgo, ConvVariant, SHARED_TILES};
    use super::tuning::{Choice, Origin, TuningTable, key};
    let mut b = G::new(16, 16, 128);
    let deep = b.conv("deep", 0, 3, 2, 128); // direct (stride 2), K 1152
    let narrow = b.conv("narrow", deep, 1, 1, 64);
    let p = b.pool("pool", narrow);
    let l = b.conv("logits", p, 1, 1, 10);
    let g = b.done(l);
    let limits = Limits::unlimited();
    let gpu = DeviceProfile::gpu();
    let heuristic = plan_for(&g, 2, &limits, &gpu).unwrap();
    let convs = [0, 1, 3];
    for i in convs {
        assert_eq!(heuristic.steps[i].conv.unwrap().origin, Origin::Heuristic);
    }
    let step_key = |i: usize| match &g.ops[i] {
        Op::Conv(c) => key(c, &g.tensors, 2, heuristic.steps[i].conv.unwrap().algo),
        _ => unreachable!(),
    };
    let choice = |variant, tile, splits| Choice {
        variant,
        tile,
        splits,
    };
    let split = choice(ConvVariant::Shared, Some(4), 4);
    let tile = choice(ConvVariant::Shared, Some(2), 1);
    let texture = choice(ConvVariant::Texture, None, 1); // a GPU profile has no textures
    let mut table = TuningTable::default();
    for (i, c) in [(0, split), (1, tile), (3, texture)] {
        table.entries.insert(step_key(i), c);
    }
    assert_eq!(table.len(), 3, "three distinct shapes");
    let opts = PlanOptions {
        device: gpu,
        tuning: Some(std::sync::Arc::new(table)),
        ..Default::default()
    };
    let tuned = plan_with(&g, 2, &limits, &opts).unwrap();
    tuned.check(&g, &limits).unwrap();
    let c = |i: usize| tuned.steps[i].conv.unwrap();
    assert_eq!(
        (c(0).algo, c(0).origin),
        (ConvAlgo::SplitK(4), Origin::Tuned)
    );
    assert_eq!(Choice::of(&c(0)), split);
    assert_eq!(
        tuned.steps[0].scratch.len(),
        1,
        "the partial sums are planned"
    );
    assert_eq!(heuristic.steps[0].conv.unwrap().algo, ConvAlgo::SplitK(16));
    assert_eq!((c(1).origin, Choice::of(&c(1))), (Origin::Tuned, tile));
    assert_eq!(c(1).gemm.tile_m, SHARED_TILES[2].bm());
    assert_eq!(c(3), heuristic.steps[3].conv.unwrap());
    // Tuned not to split: direct, without scratch.
    let mut table = TuningTable::default();
    table.entries.insert(step_key(0), tile);
    let opts = PlanOptions {
        tuning: Some(std::sync::Arc::new(table)),
        ..opts.clone()
    };
    let unsplit = plan_with(&g, 2, &limits, &opts).unwrap();
    unsplit.check(&g, &limits).unwrap();
    let c0 = unsplit.steps[0].conv.unwrap();
    assert_eq!((c0.algo, Choice::of(&c0)), (ConvAlgo::Direct, tile));
    assert!(unsplit.steps[0].scratch.is_empty());
    // The JSON and the table say where each came from.
    let json = tuned.to_json(&g).to_string();
    assert!(json.contains(r#""origin":"tuned""#) && json.contains(r#""origin":"heuristic""#));
    assert!(tuned.describe(&g).contains("tuned)"));
}

/// Every sub-batch size a session runs is planned with the plan: the full one, the requested
/// batch's trailing one and the caller's extra sizes (issue 22). Each smaller size runs the
/// full size's kernels (a tuned choice holds, no other pipeline) at its own rows and grid,
/// with bounds checks wherever its rows no longer fill the tiles; a run of `n` images takes
/// the smallest planned size that holds them.
#[test]
fn every_sub_batch_size_is_planned_with_the_full_sizes_kernels() {
    use super::kernel::{ConvAlgo, ConvVariant};
    use super::tuning::{Choice, TuningTable, key};
    let mut b = G::new(32, 32, 16);
    let a = b.conv("a", 0, 3, 1, 16);
    let s = b.conv("s", a, 3, 2, 64); // 16x16 maps, K 144
    let p = b.pool("pool", s);
    let l = b.conv("logits", p, 1, 1, 10);
    let g = b.done(l);
    // A sub-batch of 4 (the arena of 4 images, not 5): 10 images run as 4 + 4 + 2.
    // Direct convs: Winograd's scratch would change the sub-batch (tests/tune.rs runs smaller
    // sub-batches of Winograd convs on the GPU).
    let software = DeviceProfile {
        winograd: WinogradPolicy::Off,
        ..DeviceProfile::software()
    };
    let four = plan_for(&g, 4, &Limits::unlimited(), &software).unwrap();
    let limits = Limits {
        max_binding_bytes: four.arena_bytes,
        ..Limits::unlimited()
    };
    let heuristic = plan_for(&g, 10, &limits, &software).unwrap();
    assert_eq!(heuristic.batch, 4);
    // Tuned: the register kernel where the heuristic takes another.
    let mut table = TuningTable::default();
    for (op, step) in g.ops.iter().zip(&heuristic.steps) {
        if let (Op::Conv(c), Some(cp)) = (op, step.conv) {
            let register = Choice {
                variant: ConvVariant::Register,
                tile: None,
                splits: 1,
            };
            table
                .entries
                .insert(key(c, &g.tensors, 10, cp.algo), register);
        }
    }
    let opts = PlanOptions {
        device: software,
        tuning: Some(std::sync::Arc::new(table)),
        batch_sizes: vec![1, 3, 9],
        ..Default::default()
    };
    let p = plan_with(&g, 10, &limits, &opts).unwrap();
    p.check(&g, &limits).unwrap();
    let sizes: Vec<usize> = p.sub_batch_sizes.iter().map(|s| s.images).collect();
    // 4 itself, 10's tail 2, and 1, 3 and 9's pieces (4 and its tail 1).
    assert_eq!(sizes, [1, 2, 3, 4]);
    assert!(
        p.describe(&g)
            .contains("sub-batch sizes planned: 1, 2, 3, 4")
    );
    assert_eq!(
        p.to_json(&g)["sub_batch_sizes"],
        serde_json::json!([1, 2, 3, 4])
    );
    for sub in &p.sub_batch_sizes {
        for ((step, cp), op) in p.steps.iter().zip(&sub.convs).zip(&g.ops) {
            let Op::Conv(c) = op else {
                assert!(cp.is_none(), "{}", step.name);
                continue;
            };
            let (full, cp) = (step.conv.unwrap(), cp.unwrap());
            assert_eq!(cp.gemm.variant, ConvVariant::Register, "{}", step.name);
            // The same pipeline: everything but the rows, the grid and the checks.
            let same = |x: super::kernel::ConvConfig| {
                (
                    x.variant, x.wg, x.tile_m, x.rows, x.tile_n4, x.cols4, x.k_step, x.splits,
                )
            };
            assert_eq!(same(cp.gemm), same(full.gemm), "{}", step.name);
            assert_eq!(
                (cp.algo, cp.origin),
                (full.algo, full.origin),
                "{}",
                step.name
            );
            let out = &g.tensors[c.output];
            let per_image = match cp.algo {
                ConvAlgo::Winograd(t) => t.tiles(out.h) * t.tiles(out.w),
                _ => out.h * out.w,
            };
            let m = sub.images * per_image;
            assert_eq!(cp.gemm.m as usize, m, "{} at {}", step.name, sub.images);
            assert_eq!(
                cp.gemm.tiles,
                (m as u32).div_ceil(cp.gemm.tile_m) * cp.gemm.tiles_n,
                "{}",
                step.name
            );
            assert!(
                cp.gemm.checks || m % cp.gemm.tile_m as usize == 0,
                "{} at {}: rows past M unchecked",
                step.name,
                sub.images
            );
        }
    }
    let run = |n| p.sub_batch_for(n).map(|s| s.images);
    assert_eq!(
        (run(1), run(2), run(3), run(4), run(5)),
        (Some(1), Some(2), Some(3), Some(4), None)
    );
    // A plan without extra sizes runs 3 images on its 4-image pass.
    let plain = plan_for(&g, 4, &limits, &software).unwrap();
    assert_eq!(plain.sub_batch_sizes.len(), 1);
    assert_eq!(plain.sub_batch_for(3).map(|s| s.images), Some(4));
    // A plan whose smaller size carries another kernel than its full size fails its check.
    let mut bad = p.clone();
    bad.sub_batch_sizes[0].convs[0]
        .as_mut()
        .unwrap()
        .gemm
        .variant = ConvVariant::Texture;
    assert!(
        bad.check(&g, &limits)
            .unwrap_err()
            .contains("another conv plan")
    );
    let mut bad = p.clone();
    bad.sub_batch_sizes.remove(1);
    assert!(
        bad.check(&g, &limits)
            .unwrap_err()
            .contains("trailing sub-batch")
    );
}
