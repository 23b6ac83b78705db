// Elementwise ops over NHWC activations in the arena.
//
// `bn_relu`: out = relu(x * scale[c] + shift[c]) (without the ReLU under flag 16), one
// invocation per 4 channels of a pixel. Used to materialise the v2 post-norm map when features
// are requested (otherwise it is fused into the global average pool) and for MXNet Gluon v2's
// input normalisation, so it is simple rather than fast. Tensors are f32 or f16 as in
// nhwc.wgsl.

struct Params {
    total: u32,  // invocations: pixels * ceil(c / 4)
    c: u32,
    in_off: u32, // element offsets in the arena
    out_off: u32,
    cp: u32,     // pad4(c): offset of the shift in `consts`
    flags: u32,  // 2: input f16, 4: output f16, 8: constants f16, 16: no ReLU, 32: ragged C
    _pad1: u32,
    _pad2: u32,
}

const BN_NO_RELU: u32 = 16u;

@compute @workgroup_size(256)
fn bn_relu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wid.y * nwg.x + wid.x) * 256u + lid;
    if (idx >= p.total) {
        return;
    }
    let groups = (p.c + 3u) / 4u;
    let c = (idx % groups) * 4u;
    let pix = idx / groups;
    let ei = p.in_off + pix * p.c + c;
    let eo = p.out_off + pix * p.c + c;
    let x = load4(ei, c);
    let sc = cst4(c);
    let sh = cst4(p.cp + c);
    var y = fma(x, sc, sh);
    if (!has(BN_NO_RELU)) {
        y = select(y, vec4<f32>(0.0), y < vec4<f32>(0.0)); // NaN-keeping ReLU
    }
    store4(eo, c, y);
}
