// Pooling over NHWC activations in the arena, 4 channels per invocation.
//
// * `max_pool`: one invocation per output pixel and 4 channels. Window rows
//   iy = oy * stride - pad_top + ky (likewise x); positions outside the input read `pad_value`
//   (-inf for the frameworks' max pool padding, 0 for an explicit zero pad): together with the
//   explicit top/left padding and the output size this covers symmetric, TF-SAME
//   (asymmetric) and zero-padded stems.
// * `global_avg_pool`: a workgroup per (image, block of 256 channels), one invocation per 4
//   channels summing over H * W (consecutive invocations read consecutive channels), with the
//   optional fused v2 post-norm relu(x * scale + shift) applied before the mean.
//
// Tensors are f32 or f16 (FLAG_IN_F16 / FLAG_OUT_F16, stored as in conv/io32.wgsl: f16 only
// for channel counts that are multiples of 4, so 4 channels are always two whole words).

struct Params {
    total: u32,      // invocations (max pool) / workgroups (global average pool)
    c: u32,
    h: u32,          // input height
    w: u32,          // input width
    oh: u32,
    ow: u32,
    size: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    in_off: u32,     // element offsets in the arena
    out_off: u32,
    pad_value: f32,  // from the uniform because WGSL cannot spell -inf as a constant
    flags: u32,      // FLAG_*
    cp: u32,         // pad4(c): offset of the shift in `consts`
    _pad0: u32,
}

const FLAG_ACT: u32 = 1u;    // global average pool: fused bn_relu
const FLAG_IN_F16: u32 = 2u;
const FLAG_OUT_F16: u32 = 4u;
const FLAG_W_F16: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
// The one activation arena (see conv/io32.wgsl for why it is a single read_write binding).
@group(0) @binding(1) var<storage, read_write> arena: array<u32>;
// global_avg_pool only: scale [pad4(c)] | shift [pad4(c)] (a dummy without the act).
@group(0) @binding(2) var<storage, read> consts: array<u32>;

// Constant i (f32, or f16 with flag 8: the plan's precision).
fn cst(i: u32) -> f32 {
    if ((p.flags & 8u) != 0u) {
        let v = unpack2x16float(consts[i >> 1u]);
        return select(v.x, v.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(consts[i]);
}

fn cst4(i: u32) -> vec4<f32> {
    return vec4<f32>(cst(i), cst(i + 1u), cst(i + 2u), cst(i + 3u));
}

fn has(f: u32) -> bool {
    return (p.flags & f) != 0u;
}

// Channels c .. c + 3 of element index e (= pixel * C + c); channels >= C read 0 (f32 only:
// f16 tensors have C % 4 == 0).
fn load4(e: u32, c: u32) -> vec4<f32> {
    if (has(FLAG_IN_F16)) {
        let w = e >> 1u;
        return vec4<f32>(unpack2x16float(arena[w]), unpack2x16float(arena[w + 1u]));
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
    if (has(FLAG_OUT_F16)) {
        let w = e >> 1u;
        arena[w] = pack2x16float(v.xy);
        arena[w + 1u] = pack2x16float(v.zw);
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (c + j < p.c) {
            arena[e + j] = bitcast<u32>(v[j]);
        }
    }
}

@compute @workgroup_size(64)
fn max_pool(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (idx >= p.total) {
        return;
    }
    let groups = (p.c + 3u) / 4u;
    let c = (idx % groups) * 4u;
    let pix = idx / groups;
    let ox = pix % p.ow;
    let oy = (pix / p.ow) % p.oh;
    let img = pix / (p.ow * p.oh);
    let y0 = i32(oy * p.stride) - i32(p.pad_top);
    let x0 = i32(ox * p.stride) - i32(p.pad_left);
    var best = vec4<f32>(p.pad_value);
    var first = true;
    for (var ky = 0u; ky < p.size; ky++) {
        for (var kx = 0u; kx < p.size; kx++) {
            let iy = y0 + i32(ky);
            let ix = x0 + i32(kx);
            var v = vec4<f32>(p.pad_value);
            if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
                v = load4(p.in_off + ((img * p.h + u32(iy)) * p.w + u32(ix)) * p.c + c, c);
            }
            // Start from the first window element rather than from -inf: the pad value may be
            // -inf, which cannot be a WGSL constant. A NaN wins and stays, as in the
            // frameworks' max pool (`max` may drop it; `v == v` is false only for NaN).
            best = select(best, v, vec4<bool>(first) | (v > best) | !(v == v));
            first = false;
        }
    }
    store4(p.out_off + pix * p.c + c, c, best);
}

@compute @workgroup_size(64)
fn global_avg_pool(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= p.total) {
        return;
    }
    let blocks = (p.c + 255u) / 256u;
    let img = tile / blocks;
    let c = (tile % blocks) * 256u + lid * 4u;
    if (c >= p.c) {
        return;
    }
    let hw = p.h * p.w;
    let act = has(FLAG_ACT);
    var sc = vec4<f32>(1.0);
    var sh = vec4<f32>(0.0);
    if (act) {
        sc = cst4(c);
        sh = cst4(p.cp + c);
    }
    var sum = vec4<f32>(0.0);
    var e = p.in_off + img * hw * p.c + c;
    for (var i = 0u; i < hw; i++) {
        var x = load4(e, c);
        if (act) {
            x = fma(x, sc, sh);
            x = select(x, vec4<f32>(0.0), x < vec4<f32>(0.0)); // NaN-keeping ReLU
        }
        sum += x;
        e += p.c;
    }
    store4(p.out_off + img * p.c + c, c, sum / f32(hw));
}
