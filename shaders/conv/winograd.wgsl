// Winograd F(m x m, 3 x 3) transforms of a 3x3, stride-1, pad-1 conv (see src/winograd.rs for
// the algorithm and the matrices): `winograd_input` turns the pre-activated, zero-padded input
// into V = B^T d B per tile and channel, the conv variants then run the a^2 GEMMs
// M[pt] = V[pt] U[pt] as one batched GEMM (workgroup z = point), and `winograd_output` turns M
// into the outputs Y = A^T M A with the usual epilogue (bias, residual, ReLU, split).
//
// Layouts (elements): V [a^2][T][cinp], M [a^2][T][coutp], T = batch * tiles_y * tiles_x,
// tile t = (image * tiles_y + ty) * tiles_x + tx covering output rows m ty .. m ty + m - 1.
// Each invocation handles one tile and 4 channels (vec4 arithmetic).

// The tile: ALPHA = 4 (F(2,3)) or 6 (F(4,3)); MO = ALPHA - 2 outputs per side.
override ALPHA: u32 = 6u;

// The transforms are written out with the matrices' zeros and ones folded (as NNPACK and ncnn
// do) and with every tile value a named value, not an array element: a loop over an array
// with a constant-matrix lookup per term kept the tile in scratch memory on lavapipe and
// made these two dispatches cost more than the GEMMs they serve (4.1 and 2.6 ms against 5.0
// ms on a 56x56x64 F(4,3) layer). With ALPHA an override, the unused size folds away.
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
    if (ALPHA == 4u) {
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
    if (ALPHA == 4u) {
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
    if (x >= ALPHA || iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w) || t.c >= p.cin) {
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
    if (y >= ALPHA) {
        return Six();
    }
    return bt(Six(
        tile_value(t, y, 0u),
        tile_value(t, y, 1u),
        tile_value(t, y, 2u),
        tile_value(t, y, 3u),
        tile_value(t, y, 4u),
        tile_value(t, y, 5u),
    ));
}

// Stores column j of V (points (i, j), i < ALPHA) of tile `t`, channels c .. c + 3.
fn store_v(t: u32, c: u32, j: u32, v: Six) {
    if (j >= ALPHA) {
        return;
    }
    let out16 = has_flag(FLAG_OUT_F16);
    let base = p.out_off + t * p.cinp + c;
    let step = ALPHA * p.a_batch; // from point (i, j) to (i + 1, j)
    let e = base + j * p.a_batch;
    arena_store4(e, v.x0, out16);
    arena_store4(e + step, v.x1, out16);
    arena_store4(e + 2u * step, v.x2, out16);
    arena_store4(e + 3u * step, v.x3, out16);
    if (ALPHA == 6u) {
        arena_store4(e + 4u * step, v.x4, out16);
        arena_store4(e + 5u * step, v.x5, out16);
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
    let mo = ALPHA - 2u;
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
    // e = d B, row by row; then V = B^T e, column by column.
    let e0 = input_row(tile, 0u);
    let e1 = input_row(tile, 1u);
    let e2 = input_row(tile, 2u);
    let e3 = input_row(tile, 3u);
    let e4 = input_row(tile, 4u);
    let e5 = input_row(tile, 5u);
    store_v(t, tile.c, 0u, bt(Six(e0.x0, e1.x0, e2.x0, e3.x0, e4.x0, e5.x0)));
    store_v(t, tile.c, 1u, bt(Six(e0.x1, e1.x1, e2.x1, e3.x1, e4.x1, e5.x1)));
    store_v(t, tile.c, 2u, bt(Six(e0.x2, e1.x2, e2.x2, e3.x2, e4.x2, e5.x2)));
    store_v(t, tile.c, 3u, bt(Six(e0.x3, e1.x3, e2.x3, e3.x3, e4.x3, e5.x3)));
    store_v(t, tile.c, 4u, bt(Six(e0.x4, e1.x4, e2.x4, e3.x4, e4.x4, e5.x4)));
    store_v(t, tile.c, 5u, bt(Six(e0.x5, e1.x5, e2.x5, e3.x5, e4.x5, e5.x5)));
}

// Row i of M (points (i, j)) of tile `t`, channels c .. c + 3, transformed: A^T M[i].
fn output_row(t: u32, c: u32, i: u32) -> Six {
    if (i >= ALPHA) {
        return Six();
    }
    let e = p.in_off + t * p.coutp + c + i * ALPHA * p.c_batch;
    let s = p.c_batch;
    var m = Six(a_load4(e), a_load4(e + s), a_load4(e + 2u * s), a_load4(e + 3u * s), vec4<f32>(0.0), vec4<f32>(0.0));
    if (ALPHA == 6u) {
        m.x4 = a_load4(e + 4u * s);
        m.x5 = a_load4(e + 5u * s);
    }
    return at(m);
}

// The output transform's tile: its first output pixel and channel group, and the bias.
struct OutTile {
    img: u32,
    oy0: u32,
    ox0: u32,
    c: u32,
    bias: vec4<f32>,
}

// Stores row i of the tile's outputs (i < MO): y[j] for j < MO, inside the map.
fn store_y(t: OutTile, i: u32, y: Six) {
    let oy = t.oy0 + i;
    if (i >= ALPHA - 2u || oy >= p.oh) {
        return;
    }
    store_y1(t, oy, 0u, y.x0);
    store_y1(t, oy, 1u, y.x1);
    if (ALPHA == 6u) {
        store_y1(t, oy, 2u, y.x2);
        store_y1(t, oy, 3u, y.x3);
    }
}

fn store_y1(t: OutTile, oy: u32, j: u32, y: vec4<f32>) {
    let ox = t.ox0 + j;
    if (ox >= p.ow) {
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
    let mo = ALPHA - 2u;
    let tiles = p.tiles_y * p.tiles_x;
    var tile: OutTile;
    tile.c = 4u * item.y;
    tile.img = t / tiles;
    tile.oy0 = ((t % tiles) / p.tiles_x) * mo;
    tile.ox0 = (t % p.tiles_x) * mo;
    tile.bias = bias4(tile.c);
    // f = M A, row by row; then Y = A^T f, column by column.
    let f0 = output_row(t, tile.c, 0u);
    let f1 = output_row(t, tile.c, 1u);
    let f2 = output_row(t, tile.c, 2u);
    let f3 = output_row(t, tile.c, 3u);
    let f4 = output_row(t, tile.c, 4u);
    let f5 = output_row(t, tile.c, 5u);
    // Column j of f transformed gives output column j; regroup into output rows.
    let g0 = at(Six(f0.x0, f1.x0, f2.x0, f3.x0, f4.x0, f5.x0));
    let g1 = at(Six(f0.x1, f1.x1, f2.x1, f3.x1, f4.x1, f5.x1));
    let g2 = at(Six(f0.x2, f1.x2, f2.x2, f3.x2, f4.x2, f5.x2));
    let g3 = at(Six(f0.x3, f1.x3, f2.x3, f3.x3, f4.x3, f5.x3));
    store_y(tile, 0u, Six(g0.x0, g1.x0, g2.x0, g3.x0, vec4<f32>(0.0), vec4<f32>(0.0)));
    store_y(tile, 1u, Six(g0.x1, g1.x1, g2.x1, g3.x1, vec4<f32>(0.0), vec4<f32>(0.0)));
    store_y(tile, 2u, Six(g0.x2, g1.x2, g2.x2, g3.x2, vec4<f32>(0.0), vec4<f32>(0.0)));
    store_y(tile, 3u, Six(g0.x3, g1.x3, g2.x3, g3.x3, vec4<f32>(0.0), vec4<f32>(0.0)));
}
