// Pooling over NHWC activations in the arena.
//
// * `max_pool`: one invocation per output element. Window rows iy = oy * stride - pad_top + ky
//   (likewise x); positions outside the input read `pad_value` (-inf for the frameworks' max
//   pool padding, 0 for an explicit zero pad): together with the explicit top/left padding and
//   the output size this covers symmetric, TF-SAME (asymmetric) and zero-padded stems.
// * `global_avg_pool`: a workgroup per (image, block of 64 channels), one invocation per
//   channel summing over H * W (consecutive invocations read consecutive channels), with the
//   optional fused v2 post-norm relu(x * scale + shift) applied before the mean.

struct Params {
    total: u32,      // output elements (max pool) / workgroups (global average pool)
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
    flags: u32,      // 1: fused bn_relu (global average pool)
    cp: u32,         // pad4(c): offset of the shift in `consts`
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The one activation arena (see conv.wgsl for why it is a single read_write binding).
@group(0) @binding(1) var<storage, read_write> arena: array<f32>;
// global_avg_pool only: scale [pad4(c)] | shift [pad4(c)] (a dummy without the fused act).
@group(0) @binding(2) var<storage, read> consts: array<f32>;

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
    let c = idx % p.c;
    let pix = idx / p.c;
    let ox = pix % p.ow;
    let oy = (pix / p.ow) % p.oh;
    let img = pix / (p.ow * p.oh);
    let y0 = i32(oy * p.stride) - i32(p.pad_top);
    let x0 = i32(ox * p.stride) - i32(p.pad_left);
    var best = p.pad_value;
    var first = true;
    for (var ky = 0u; ky < p.size; ky++) {
        for (var kx = 0u; kx < p.size; kx++) {
            let iy = y0 + i32(ky);
            let ix = x0 + i32(kx);
            var v = p.pad_value;
            if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
                v = arena[p.in_off + ((img * p.h + u32(iy)) * p.w + u32(ix)) * p.c + c];
            }
            // Start from the first window element rather than from -inf: the pad value may be
            // -inf, which cannot be a WGSL constant. A NaN wins and stays, as in the
            // frameworks' max pool (`max` may drop it; `v == v` is false only for NaN).
            best = select(best, v, first || v > best || !(v == v));
            first = false;
        }
    }
    arena[p.out_off + idx] = best;
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
    let blocks = (p.c + 63u) / 64u;
    let img = tile / blocks;
    let c = (tile % blocks) * 64u + lid;
    if (c >= p.c) {
        return;
    }
    let hw = p.h * p.w;
    let in_act = (p.flags & 1u) != 0u;
    var sc = 1.0;
    var sh = 0.0;
    if (in_act) {
        sc = consts[c];
        sh = consts[p.cp + c];
    }
    var sum = 0.0;
    var idx = p.in_off + img * hw * p.c + c;
    for (var i = 0u; i < hw; i++) {
        var x = arena[idx];
        if (in_act) {
            x = fma(x, sc, sh);
            x = select(x, 0.0, x < 0.0); // NaN-keeping ReLU (see conv.wgsl)
        }
        sum += x;
        idx += p.c;
    }
    arena[p.out_off + img * p.c + c] = sum / f32(hw);
}
