// Staging of conv inputs for the texture conv variant (see `conv_texture` in conv.wgsl).
//
// `pack_texture`: NHWC input with cin % 4 != 0 (the 3-channel stem) into an rgba32float
// texture of ceil(cin / 4) texels per pixel, zero-padded. (Inputs with cin % 4 == 0 need no
// kernel: their bytes already are the texture's, and a buffer-to-texture copy moves them.)
// Texel i is at (i % TEX_WIDTH, i / TEX_WIDTH), as in conv.wgsl.

struct Params {
    texels: u32, // pixels * cinp4
    cin: u32,
    cinp4: u32,  // texels per pixel
    in_off: u32, // element offset of the input in the arena
}

const TEX_WIDTH: u32 = 4096u;
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
// The one activation arena (see conv.wgsl for why it is a single read_write binding).
@group(0) @binding(1) var<storage, read_write> arena: array<f32>;
@group(0) @binding(2) var packed: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(WG)
fn pack_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    if (i >= p.texels) {
        return;
    }
    let c0 = (i % p.cinp4) * 4u;
    let base = p.in_off + (i / p.cinp4) * p.cin + c0;
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if (c0 + j < p.cin) {
            v[j] = arena[base + j];
        }
    }
    textureStore(packed, vec2<u32>(i % TEX_WIDTH, i / TEX_WIDTH), v);
}
