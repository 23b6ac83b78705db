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
// Bindings, f16 handling and 4-channel loads/stores: nhwc.wgsl.

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
    flags: u32,      // POOL_ACT, NHWC_*
    cp: u32,         // pad4(c): offset of the shift in `consts`
    _pad0: u32,
}

const POOL_ACT: u32 = 1u;    // global average pool: fused bn_relu (NHWC_*_F16: nhwc.wgsl)

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
    let act = has(POOL_ACT);
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
