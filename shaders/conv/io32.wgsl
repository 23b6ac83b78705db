// Storage access for the conv kernels that read the arena in 32-bit words: register, shared,
// texture and the Winograd transforms (the subgroup kernel has io64.wgsl instead).
//
// Tensors are f32 (one element per word) or f16 (two per word, `pack2x16float`): the conv's
// input by the `A_F16` override, its output, split and residual by FLAG_OUT_F16 /
// FLAG_RES_F16, the op's constants by `W_F16`. Every value is computed in f32. The planner
// keeps f16 to tensors whose channel count is a multiple of 4, so that f16 vec4 accesses are
// always two whole words and no two invocations write one word.

// The one activation arena: every tensor of the plan lives in it, so inputs, residuals and
// outputs are all reached through this single binding (binding one buffer as both read-only
// and read_write storage in one dispatch is a usage conflict).
@group(0) @binding(1) var<storage, read_write> arena: array<u32>;
// This op's slot of the weights buffer, laid out by `Op::constants()` with every section
// padded to 4 values: weight [K][coutp] | bias [coutp] | scale [cinp] | shift [cinp]. Read as
// vec4 words: a constants' vec4 is one 16-byte load instead of four, which on lavapipe (every
// storage access a per-lane sequence) halved the classifier's time and shortened every
// kernel's compile; the slots are 16-byte multiples.
@group(0) @binding(2) var<storage, read> consts: array<vec4<u32>>;

fn half_of(word: u32, e: u32) -> f32 {
    let v = unpack2x16float(word);
    return select(v.x, v.y, (e & 1u) == 1u);
}

fn arena_load(e: u32, f16: bool) -> f32 {
    if (f16) {
        return half_of(arena[e >> 1u], e);
    }
    return bitcast<f32>(arena[e]);
}

// Elements e .. e + 3 (f16: e even).
fn arena_load4(e: u32, f16: bool) -> vec4<f32> {
    if (f16) {
        let w = e >> 1u;
        return vec4<f32>(unpack2x16float(arena[w]), unpack2x16float(arena[w + 1u]));
    }
    return bitcast<vec4<f32>>(vec4<u32>(arena[e], arena[e + 1u], arena[e + 2u], arena[e + 3u]));
}

fn arena_store(e: u32, x: f32) {
    arena[e] = bitcast<u32>(x); // f32 tensors only (see the header)
}

fn arena_store4(e: u32, x: vec4<f32>, f16: bool) {
    if (f16) {
        let w = e >> 1u;
        arena[w] = pack2x16float(x.xy);
        arena[w + 1u] = pack2x16float(x.zw);
        return;
    }
    let u = bitcast<vec4<u32>>(x);
    arena[e] = u.x;
    arena[e + 1u] = u.y;
    arena[e + 2u] = u.z;
    arena[e + 3u] = u.w;
}

// The A operand (the conv's input).
fn a_load(e: u32) -> f32 {
    return arena_load(e, A_F16);
}

fn a_load4(e: u32) -> vec4<f32> {
    return arena_load4(e, A_F16);
}

// The op's constants.
fn w_load(e: u32) -> f32 {
    if (W_F16) {
        return half_of(consts[e >> 3u][(e >> 1u) & 3u], e);
    }
    return bitcast<f32>(consts[e >> 2u][e & 3u]);
}

// Constants e .. e + 3 (e % 4 == 0: every section is padded to 4).
fn w_load4(e: u32) -> vec4<f32> {
    if (W_F16) {
        let q = consts[e >> 3u];
        let w = select(q.xy, q.zw, (e & 4u) != 0u);
        return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
    }
    return bitcast<vec4<f32>>(consts[e >> 2u]);
}

// Residual, ReLU and the split for output pixel `m`, channels c0 .. c0 + 3 (c0 % 4 == 0) of a
// value that already includes the bias; `res_pix` = residual_pixel(m); `zc` the element offset
// of this GEMM's output in a batch (0 for a conv). Channels >= cout (padding) are dropped.
fn store4_biased(m: u32, res_pix: u32, c0: u32, r: vec4<f32>, zc: u32) {
    if (c0 >= p.cout) {
        return;
    }
    let split_c = p.cout - p.at;
    let main = c0 + 4u <= p.at;
    if (main || (c0 >= p.at && c0 + 4u <= p.cout)) {
        var x = r;
        if (main && has_flag(FLAG_RESIDUAL)) {
            x += arena_load4(p.res_off + res_pix * p.at + c0, has_flag(FLAG_RES_F16));
        }
        if (has_flag(select(FLAG_SPLIT_RELU, FLAG_RELU, main))) {
            x = relu4(x);
        }
        let e = select(p.split_off + m * split_c + (c0 - p.at), p.out_off + zc + m * p.at + c0, main);
        arena_store4(e, x, has_flag(FLAG_OUT_F16));
        return;
    }
    // A vec4 that straddles `at` or ends past cout: element by element (f32 tensors only).
    // Only a ragged conv gets here: elsewhere every vec4 lies whole in `at` or in the split.
    if (!has_flag(FLAG_RAGGED)) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let c = c0 + j;
        if (c >= p.cout) {
            break;
        }
        let in_main = c < p.at;
        var x = r[j];
        if (in_main && has_flag(FLAG_RESIDUAL)) {
            x += arena_load(p.res_off + res_pix * p.at + c, has_flag(FLAG_RES_F16));
        }
        if (has_flag(select(FLAG_SPLIT_RELU, FLAG_RELU, in_main))) {
            x = relu(x);
        }
        arena_store(select(p.split_off + m * split_c + (c - p.at), p.out_off + zc + m * p.at + c, in_main), x);
    }
}

// As `store4_biased`, adding the bias and computing the residual pixel.
fn store4(m: u32, c0: u32, acc: vec4<f32>, zc: u32) {
    var res_pix = 0u;
    if (has_flag(FLAG_RESIDUAL)) {
        res_pix = residual_pixel(m);
    }
    store4_biased(m, res_pix, c0, acc + bias4(c0), zc);
}
