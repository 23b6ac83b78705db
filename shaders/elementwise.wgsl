// Elementwise ops over NHWC activations in the arena.
//
// `bn_relu`: out = relu(x * scale[c] + shift[c]), one invocation per element. Only used to
// materialise the v2 post-norm map when features are requested (otherwise it is fused into the
// global average pool), so it is simple rather than fast.

struct Params {
    total: u32,  // elements: batch * h * w * c
    c: u32,
    in_off: u32, // element offsets in the arena
    out_off: u32,
    cp: u32,     // pad4(c): offset of the shift in `consts`
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The one activation arena (see conv.wgsl for why it is a single read_write binding).
@group(0) @binding(1) var<storage, read_write> arena: array<f32>;
// scale [pad4(c)] | shift [pad4(c)]
@group(0) @binding(2) var<storage, read> consts: array<f32>;

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
    let c = idx % p.c;
    // NaN-keeping ReLU (see conv.wgsl's `relu`).
    let y = fma(arena[p.in_off + idx], consts[c], consts[p.cp + c]);
    arena[p.out_off + idx] = select(y, 0.0, y < 0.0);
}
