// Winograd F(m x m, 3 x 3) transforms of a 3x3, stride-1, pad-1 conv (see src/winograd.rs for
// the algorithm and the matrices): `winograd_input` turns the pre-activated, zero-padded input
// into V = B^T d B per tile and channel, the conv variants then run the a^2 GEMMs
// M[pt] = V[pt] U[pt] as one batched GEMM (workgroup z = point), and `winograd_output` turns M
// into the outputs Y = A^T M A with the usual epilogue (bias, residual, ReLU, split).
//
// Layouts (elements): V [a^2][T][cinp], M [a^2][T][coutp], T = batch * tiles_y * tiles_x,
// tile t = (image * tiles_y + ty) * tiles_x + tx covering output rows m ty .. m ty + m - 1.
// Each invocation handles one tile and 4 channels (vec4 arithmetic).

// The tile's side `p.alpha`: 4 (F(2,3)) or 6 (F(4,3)); alpha - 2 outputs per side. A uniform,
// not an override: one pair of pipelines serves both tiles (each pipeline costs lavapipe ~0.5 s
// of compile on a cold cache), and loop bounds that Mesa cannot fold keep the loops over tile
// rows rolled; unrolled (36 loads and stores of 4 channels, 16 epilogues), lavapipe's compile
// of these two entry points took ~55 s of CPU for one network.

// The transforms are written out with the matrices' zeros and ones folded (as NNPACK and ncnn
// do): a loop over the matrices with a lookup per term made these two dispatches cost more
// than the GEMMs they serve (4.1 and 2.6 ms against 5.0 ms on a 56x56x64 F(4,3) layer).
//
// Matrices (src/winograd.rs): F(2,3) B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
// A^T = [1 1 1 0; 0 1 -1 -1]; F(4,3) B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
// 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1], A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0;
// 0 1 1 4 4 0; 0 1 -1 8 -8 1].

// Up to 6 values along one side of a tile (4 channels each); F(2,3) uses x0 .. x3.
struct Six {
    x0: vec4<f32>,
    x1: vec4<f32>,
    x2: vec4<f32>,
    x3: vec4<f32>,
    x4: vec4<f32>,
    x5: vec4<f32>,
}

// B^T d for one side of the tile.
fn bt(d: Six) -> Six {
    let z = vec4<f32>(0.0);
    if (p.alpha == 4u) {
        return Six(d.x0 - d.x2, d.x1 + d.x2, d.x2 - d.x1, d.x1 - d.x3, z, z);
    }
    return Six(
        fma(vec4<f32>(4.0), d.x0, fma(vec4<f32>(-5.0), d.x2, d.x4)),
        fma(vec4<f32>(-4.0), d.x1 + d.x2, d.x3 + d.x4),
        fma(vec4<f32>(4.0), d.x1 - d.x2, d.x4 - d.x3),
        fma(vec4<f32>(2.0), d.x3 - d.x1, d.x4 - d.x2),
        fma(vec4<f32>(2.0), d.x1 - d.x3, d.x4 - d.x2),
        fma(vec4<f32>(4.0), d.x1, fma(vec4<f32>(-5.0), d.x3, d.x5)),
    );
}

// A^T m for one side of the tile (x0 .. x(MO-1) meaningful).
fn at(m: Six) -> Six {
    let z = vec4<f32>(0.0);
    if (p.alpha == 4u) {
        return Six(m.x0 + m.x1 + m.x2, m.x1 - m.x2 - m.x3, z, z, z, z);
    }
    let s12 = m.x1 + m.x2;
    let d12 = m.x1 - m.x2;
    let s34 = m.x3 + m.x4;
    let d34 = m.x3 - m.x4;
    return Six(
        m.x0 + s12 + s34,
        fma(vec4<f32>(2.0), d34, d12),
        fma(vec4<f32>(4.0), s34, s12),
        fma(vec4<f32>(8.0), d34, d12) + m.x5,
        z,
        z,
    );
}

// Invocations per workgroup of both transforms.
const WWG: u32 = 64u;

// (tile, vec4 channel group) of this invocation, or false past the end.
fn work_item(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, groups: u32) -> vec3<u32> {
    let i = (wid.y * nwg.x + wid.x) * WWG + lid;
    return vec3<u32>(i / groups, i % groups, u32(i < p.m * groups));
}

// The input transform's view of its tile: where it starts and how to pre-activate it.
struct InTile {
    img: u32,
    y0: i32,
    x0: i32,
    c: u32,
    sc: vec4<f32>,
    sh: vec4<f32>,
    act: bool,
}

// d[y][x] of the tile: the pre-activated input, zero in the padding and past the map (the
// padding pads the pre-activated map, as in the direct kernels).
fn tile_value(t: InTile, y: u32, x: u32) -> vec4<f32> {
    let iy = t.y0 + i32(y);
    let ix = t.x0 + i32(x);
    if (x >= p.alpha || iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w) || t.c >= p.cin) {
        return vec4<f32>(0.0);
    }
    let v = a_load4(p.in_off + ((t.img * p.h + u32(iy)) * p.w + u32(ix)) * p.cin + t.c);
    if (t.act) {
        return relu4(fma(v, t.sc, t.sh));
    }
    return v;
}

// Row y of the tile, transformed along x: (d B)[y] = B^T d[y].
fn input_row(t: InTile, y: u32) -> Six {
    var d: array<vec4<f32>, 6>;
    for (var x = 0u; x < p.alpha; x++) {
        d[x] = tile_value(t, y, x);
    }
    return bt(Six(d[0], d[1], d[2], d[3], d[4], d[5]));
}

// Stores column j of V (points (i, j), i < alpha) of tile `t`, channels c .. c + 3.
fn store_v(t: u32, c: u32, j: u32, v: Six) {
    let col = array<vec4<f32>, 6>(v.x0, v.x1, v.x2, v.x3, v.x4, v.x5);
    let out16 = has_flag(FLAG_OUT_F16);
    let e = p.out_off + t * p.cinp + c + j * p.a_stride;
    let step = p.alpha * p.a_stride; // from point (i, j) to (i + 1, j)
    for (var i = 0u; i < p.alpha; i++) {
        arena_store4(e + i * step, col[i], out16);
    }
}

@compute @workgroup_size(WWG)
fn winograd_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let item = work_item(wid, nwg, lid, p.cinp / 4u);
    if (item.z == 0u) {
        return;
    }
    let t = item.x;
    let mo = p.alpha - 2u;
    let tiles = p.tiles_y * p.tiles_x;
    var tile: InTile;
    tile.c = 4u * item.y;
    tile.img = t / tiles;
    tile.y0 = i32(((t % tiles) / p.tiles_x) * mo) - 1;
    tile.x0 = i32((t % p.tiles_x) * mo) - 1;
    tile.act = has_flag(FLAG_IN_ACT);
    tile.sc = vec4<f32>(1.0);
    tile.sh = vec4<f32>(0.0);
    if (tile.act) {
        tile.sc = act_scale4(tile.c);
        tile.sh = act_shift4(tile.c);
    }
    // e = d B, row by row; then V = B^T e, column by column. Both loops run to a bound read
    // from the uniform (see `alpha_rt`), so that Mesa keeps them rolled.
    let n = p.alpha;
    var e: array<array<vec4<f32>, 6>, 6>;
    for (var y = 0u; y < n; y++) {
        let r = input_row(tile, y);
        e[y] = array<vec4<f32>, 6>(r.x0, r.x1, r.x2, r.x3, r.x4, r.x5);
    }
    for (var j = 0u; j < n; j++) {
        store_v(t, tile.c, j, bt(Six(e[0][j], e[1][j], e[2][j], e[3][j], e[4][j], e[5][j])));
    }
}

// Row i of M (points (i, j)) of tile `t`, channels c .. c + 3, transformed: A^T M[i].
fn output_row(t: u32, c: u32, i: u32) -> Six {
    let e = p.in_off + t * p.coutp + c + i * p.alpha * p.c_stride;
    var m: array<vec4<f32>, 6>;
    for (var j = 0u; j < p.alpha; j++) {
        m[j] = a_load4(e + j * p.c_stride);
    }
    return at(Six(m[0], m[1], m[2], m[3], m[4], m[5]));
}

// The output transform's tile: its first output pixel and channel group, and the bias.
struct OutTile {
    img: u32,
    oy0: u32,
    ox0: u32,
    c: u32,
    bias: vec4<f32>,
}

// Stores output (i, j) of the tile (i, j < MO), if inside the map, with the epilogue.
fn store_y(t: OutTile, i: u32, j: u32, y: vec4<f32>) {
    let oy = t.oy0 + i;
    let ox = t.ox0 + j;
    if (oy >= p.oh || ox >= p.ow) {
        return;
    }
    let m = (t.img * p.oh + oy) * p.ow + ox;
    var res_pix = 0u;
    if (has_flag(FLAG_RESIDUAL)) {
        res_pix = residual_pixel(m);
    }
    store4_biased(m, res_pix, t.c, y + t.bias, 0u);
}

@compute @workgroup_size(WWG)
fn winograd_output(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let item = work_item(wid, nwg, lid, p.coutp / 4u);
    if (item.z == 0u) {
        return;
    }
    let t = item.x;
    let mo = p.alpha - 2u;
    let tiles = p.tiles_y * p.tiles_x;
    var tile: OutTile;
    tile.c = 4u * item.y;
    tile.img = t / tiles;
    tile.oy0 = ((t % tiles) / p.tiles_x) * mo;
    tile.ox0 = (t % p.tiles_x) * mo;
    tile.bias = bias4(tile.c);
    // f = M A, row by row; then Y = A^T f, column by column; rolled loops (see `alpha_rt`).
    let n = p.alpha;
    var f: array<array<vec4<f32>, 4>, 6>;
    for (var i = 0u; i < n; i++) {
        let r = output_row(t, tile.c, i);
        f[i] = array<vec4<f32>, 4>(r.x0, r.x1, r.x2, r.x3);
    }
    for (var j = 0u; j < n - 2u; j++) {
        let g = at(Six(f[0][j], f[1][j], f[2][j], f[3][j], f[4][j], f[5][j]));
        let y = array<vec4<f32>, 4>(g.x0, g.x1, g.x2, g.x3);
        for (var i = 0u; i < n - 2u; i++) {
            store_y(tile, i, j, y[i]);
        }
    }
}
