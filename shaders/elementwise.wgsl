// Elementwise ops over NHWC activations in the arena.
//
// `bn_relu`: out = relu(x * scale[c] + shift[c]) (without the ReLU under flag 16), one
// invocation per 4 channels of a pixel. Used to materialise the v2 post-norm map when features
// are requested (otherwise it is fused into the global average pool) and for MXNet Gluon v2's
// input normalisation, so it is simple rather than fast. Tensors are f32 or f16 as in
// pool.wgsl.

struct Params {
    total: u32,  // invocations: pixels * ceil(c / 4)
    c: u32,
    in_off: u32, // element offsets in the arena
    out_off: u32,
    cp: u32,     // pad4(c): offset of the shift in `consts`
    flags: u32,  // 2: input f16, 4: output f16, 8: constants f16, 16: no ReLU
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The one activation arena (see conv/io32.wgsl for why it is a single read_write binding).
@group(0) @binding(1) var<storage, read_write> arena: array<u32>;
// scale [pad4(c)] | shift [pad4(c)]
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
    var x = vec4<f32>(0.0);
    if ((p.flags & 2u) != 0u) {
        x = vec4<f32>(unpack2x16float(arena[ei >> 1u]), unpack2x16float(arena[(ei >> 1u) + 1u]));
    } else {
        for (var j = 0u; j < 4u; j++) {
            if (c + j < p.c) {
                x[j] = bitcast<f32>(arena[ei + j]);
            }
        }
    }
    let sc = cst4(c);
    let sh = cst4(p.cp + c);
    var y = fma(x, sc, sh);
    if ((p.flags & 16u) == 0u) {
        y = select(y, vec4<f32>(0.0), y < vec4<f32>(0.0)); // NaN-keeping ReLU
    }
    if ((p.flags & 4u) != 0u) {
        arena[eo >> 1u] = pack2x16float(y.xy);
        arena[(eo >> 1u) + 1u] = pack2x16float(y.zw);
    } else {
        for (var j = 0u; j < 4u; j++) {
            if (c + j < p.c) {
                arena[eo + j] = bitcast<u32>(y[j]);
            }
        }
    }
}
