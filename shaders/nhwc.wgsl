// What the NHWC kernels outside the conv rooms share (pool.wgsl, elementwise.wgsl; Rust puts
// this file in front of each): the bindings, the flags for f16 tensors and constants, and
// loads/stores of 4 channels. Each kernel file declares its own `Params` with at least
// `c` (channels), `cp` (pad4(c)) and `flags`.
//
// Tensors are f32 or f16 (NHWC_IN_F16 / NHWC_OUT_F16, stored as in conv/io32.wgsl: f16 only
// for channel counts that are multiples of 4, so 4 channels are always two whole words).

const NHWC_IN_F16: u32 = 2u;
const NHWC_OUT_F16: u32 = 4u;
const NHWC_W_F16: u32 = 8u;
// C is not a multiple of 4: the last 4 channels of a pixel are partly past C.
const NHWC_RAGGED: u32 = 32u;

// The flags that any launch of this pipeline sets (the plan's union over its launches): the
// others' code compiles out. The default keeps every path (see conv/common.wgsl's FLAGS).
override FLAGS: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
// The one activation arena (see conv/io32.wgsl for why it is a single read_write binding).
@group(0) @binding(1) var<storage, read_write> arena: array<u32>;
// Per-channel constants, scale [pad4(c)] | shift [pad4(c)] (global_avg_pool: a dummy without
// its fused act).
@group(0) @binding(2) var<storage, read> consts: array<u32>;

// Constant i (f32, or f16 with NHWC_W_F16: the plan's precision).
fn cst(i: u32) -> f32 {
    if (has(NHWC_W_F16)) {
        let v = unpack2x16float(consts[i >> 1u]);
        return select(v.x, v.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(consts[i]);
}

fn cst4(i: u32) -> vec4<f32> {
    return vec4<f32>(cst(i), cst(i + 1u), cst(i + 2u), cst(i + 3u));
}

fn has(f: u32) -> bool {
    return (p.flags & (f & FLAGS)) != 0u;
}

// Channels c .. c + 3 of element index e (= pixel * C + c); channels >= C read 0 (f32 only:
// f16 tensors have C % 4 == 0).
fn load4(e: u32, c: u32) -> vec4<f32> {
    if (has(NHWC_IN_F16)) {
        let w = e >> 1u;
        return vec4<f32>(unpack2x16float(arena[w]), unpack2x16float(arena[w + 1u]));
    }
    if (!has(NHWC_RAGGED)) {
        return bitcast<vec4<f32>>(vec4<u32>(arena[e], arena[e + 1u], arena[e + 2u], arena[e + 3u]));
    }
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if (c + j < p.c) {
            v[j] = bitcast<f32>(arena[e + j]);
        }
    }
    return v;
}

fn store4(e: u32, c: u32, v: vec4<f32>) {
    if (has(NHWC_OUT_F16)) {
        let w = e >> 1u;
        arena[w] = pack2x16float(v.xy);
        arena[w + 1u] = pack2x16float(v.zw);
        return;
    }
    if (!has(NHWC_RAGGED)) {
        let u = bitcast<vec4<u32>>(v);
        arena[e] = u.x;
        arena[e + 1u] = u.y;
        arena[e + 2u] = u.z;
        arena[e + 3u] = u.w;
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (c + j < p.c) {
            arena[e + j] = bitcast<u32>(v[j]);
        }
    }
}
