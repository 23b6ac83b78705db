// Storage access in 64-bit words, for the subgroup kernel (lavapipe): lavapipe turns every
// storage-buffer load into a per-lane sequence of about ten instructions whatever its width,
// so one u64 load brings two f32 (or four f16) for the price of one. Same API as io32.wgsl;
// needs the device's SHADER_INT64.
//
// Tensors are f32 or f16 as in io32.wgsl. Every access here is to 4 consecutive elements
// starting at an element index that is a multiple of 4, which the planner guarantees for the
// ops it gives this kernel (channel counts multiples of 4, 256-byte aligned tensors).

@group(0) @binding(1) var<storage, read_write> arena: array<u64>;
@group(0) @binding(2) var<storage, read> consts: array<u64>;

fn lo32(v: u64) -> u32 {
    return u32(v & 0xfffffffflu);
}

fn hi32(v: u64) -> u32 {
    return u32(v >> 32u);
}

// 4 values at element e (e % 4 == 0) of a buffer of u64 words holding f32 or f16.
fn unpack4(a: u64, b: u64) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(lo32(a), hi32(a), lo32(b), hi32(b)));
}

fn unpack4_f16(a: u64) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(lo32(a)), unpack2x16float(hi32(a)));
}

fn arena_load4(e: u32, f16: bool) -> vec4<f32> {
    if (f16) {
        return unpack4_f16(arena[e >> 2u]);
    }
    return unpack4(arena[e >> 1u], arena[(e >> 1u) + 1u]);
}

fn arena_store4(e: u32, x: vec4<f32>, f16: bool) {
    if (f16) {
        arena[e >> 2u] = u64(pack2x16float(x.xy)) | (u64(pack2x16float(x.zw)) << 32u);
        return;
    }
    let u = bitcast<vec4<u32>>(x);
    arena[e >> 1u] = u64(u.x) | (u64(u.y) << 32u);
    arena[(e >> 1u) + 1u] = u64(u.z) | (u64(u.w) << 32u);
}

fn a_load4(e: u32) -> vec4<f32> {
    return arena_load4(e, A_F16);
}

fn w_load4(e: u32) -> vec4<f32> {
    if (W_F16) {
        return unpack4_f16(consts[e >> 2u]);
    }
    return unpack4(consts[e >> 1u], consts[(e >> 1u) + 1u]);
}

// One constant (any element index).
fn w_load(e: u32) -> f32 {
    if (W_F16) {
        let v = unpack4_f16(consts[e >> 2u]);
        return v[e & 3u];
    }
    let v = consts[e >> 1u];
    return bitcast<f32>(select(lo32(v), hi32(v), (e & 1u) == 1u));
}

// Residual, ReLU and split of channels c0 .. c0 + 3 (all inside `at` or all inside the split)
// of output pixel `m`, bias included; `zc` as in io32.wgsl.
fn store4_biased(m: u32, res_pix: u32, c0: u32, r: vec4<f32>, zc: u32) {
    if (c0 >= p.cout) {
        return;
    }
    // One residual load and one store site (addresses chosen by `select`): each inlined
    // storage access is a long per-lane sequence on a software rasteriser.
    let main = c0 < p.at;
    var x = r;
    if (main && has_flag(FLAG_RESIDUAL)) {
        x += arena_load4(p.res_off + res_pix * p.at + c0, has_flag(FLAG_RES_F16));
    }
    if (has_flag(select(FLAG_SPLIT_RELU, FLAG_RELU, main))) {
        x = relu4(x);
    }
    let e = select(p.split_off + m * (p.cout - p.at) + (c0 - p.at), p.out_off + zc + m * p.at + c0, main);
    arena_store4(e, x, has_flag(FLAG_OUT_F16));
}

fn store4(m: u32, c0: u32, acc: vec4<f32>, zc: u32) {
    var res_pix = 0u;
    if (has_flag(FLAG_RESIDUAL)) {
        res_pix = residual_pixel(m);
    }
    store4_biased(m, res_pix, c0, acc + bias4(c0), zc);
}
