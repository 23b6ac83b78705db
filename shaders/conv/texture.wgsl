// Texture conv variant (`conv_texture`), for software rasterisers. lavapipe turns every
// storage-buffer load into a per-lane scalar sequence (exec-mask test, bounds check, insert),
// whatever the address, which caps a buffer GEMM near 6 GFLOP/s; a texel fetch costs a
// fraction of that per value. So this variant reads A from a copy of the input tensor in an
// rgba texture and B from a texture copy of the weights buffer, and each invocation
// accumulates TM pixels x 16 channels.
//
// Both textures are rgba32float (rgba16float for f16 tensors: `textureLoad` widens), TEX_WIDTH
// texels wide, and hold a linear array of vec4: texel i is at (i % TEX_WIDTH, i / TEX_WIDTH).
// `input_tex` holds the op's input tensor, NHWC with each pixel's channels zero-padded to
// cinp / 4 texels (staged just before the dispatch: copied from the arena when cin % 4 == 0,
// else packed by pack.wgsl), `weights_tex` the whole weights buffer of the op (its constants
// start at texel p.w_texel).
//
// Every conv takes the general im2col path with bounds checks (a 1x1 path and unchecked tiles
// measured no faster), so a pipeline is specialised only by TM and the workgroup size.
//
// The per-row statements of the hot loop are written out, one line per row, each guarded by
// the TM override (a pipeline keeps only the rows it uses): Mesa's NIR does not unroll a loop
// over rows with a body this large, and a rolled loop keeps the rows' accumulators and A
// values in scratch memory instead of registers. Measured on lavapipe (1x1 GEMMs, K 256 and
// 2048): rolled loops 14-16 GFLOP/s, 4-row matrix blocks with rolled loads 15-17, every
// per-row statement written out 17-20. Loading the A texels of all rows first and then doing
// the multiply-adds also measured much faster (37 vs 23 GFLOP/s) than interleaving them.
// Setup and stores run once per invocation and stay loops.

const TEX_WIDTH: u32 = 4096u;
const TEX_SHIFT: u32 = 12u; // log2(TEX_WIDTH)
// Most pixels per invocation: sizes the private arrays (the plan's `TEXTURE_MAX_ROWS`).
const TMAX: u32 = 16u;
// Pixels per invocation, 1..=TMAX, and invocations per workgroup.
override TM: u32 = 16u;
override TWG: u32 = 8u;

@group(0) @binding(3) var input_tex: texture_2d<f32>;
@group(0) @binding(4) var weights_tex: texture_2d<f32>;

fn input_texel(i: u32) -> vec4<f32> {
    return textureLoad(input_tex, vec2<u32>(i & (TEX_WIDTH - 1u), i >> TEX_SHIFT), 0);
}

fn weights_texel(i: u32) -> vec4<f32> {
    return textureLoad(weights_tex, vec2<u32>(i & (TEX_WIDTH - 1u), i >> TEX_SHIFT), 0);
}

// One output pixel's input window (common.wgsl's row addressing) and its current tap.
struct TexRow {
    base: u32,   // texel of channel 0 of the current tap's input pixel (0 in the padding)
    ok: bool,    // that pixel is inside the input
    win: Window,
}

fn tex_row(m: u32) -> TexRow {
    return TexRow(0u, true, window(m));
}

// The row at tap (ky, kx). (Values rather than pointer parameters: naga's SPIR-V writer
// panics on a pointer to an array element passed to a function, gfx-rs/wgpu#6875.)
fn tex_tap(r: TexRow, ky: u32, kx: u32, a_base: u32) -> TexRow {
    let t = tap(r.win, ky, kx);
    return TexRow(select(0u, a_base + t.pixel * (p.cinp / 4u), t.ok), t.ok, r.win);
}

// A[row, 4 channels of this tap], pre-activated, zero in the padding (which pads the
// pre-activated map, hence after the act).
// Branch-free: without a pre-activation sc = 1, sh = 0 and lo = -inf leave x unchanged (NaN
// and -inf included); with one, lo = 0 is the ReLU, which keeps NaN (a NaN is never < 0, where
// `max` may drop it). Two vector ops against the row's 16 vec4 FMAs, and the loop body stays
// one basic block (a per-row branch made Mesa's compile of this large shader much slower;
// `select(y, relu4(y), act)` measured ~10% slower on short-K layers).
fn tex_a(r: TexRow, c4: u32, sc: vec4<f32>, sh: vec4<f32>, lo: vec4<f32>) -> vec4<f32> {
    let y = fma(input_texel(r.base + c4), sc, sh);
    let x = select(y, lo, y < lo);
    return select(vec4<f32>(0.0), x, r.ok);
}

// The weights of 4 consecutive k (one vec4 of input channels) for one vec4 column: the 4
// weight rows as a matrix's columns, so `w * a` is the 4 x 4 block's product. `live`: how many
// of the 4 rows are this tap's (4 unless cin % 4 != 0, where the rest belong to the next tap
// or, after the last, to the bias; they are zeroed, so a padding channel adds nothing).
fn tex_w(row: u32, col: u32, live: u32) -> mat4x4<f32> {
    let s = p.coutp / 4u;
    let z = vec4<f32>(0.0);
    return mat4x4<f32>(
        weights_texel(row + col),
        select(z, weights_texel(row + s + col), live > 1u),
        select(z, weights_texel(row + 2u * s + col), live > 2u),
        select(z, weights_texel(row + 3u * s + col), live > 3u),
    );
}

// The weights of one K step for the invocation's 4 vec4 columns.
struct WBlock {
    c0: mat4x4<f32>,
    c1: mat4x4<f32>,
    c2: mat4x4<f32>,
    c3: mat4x4<f32>,
}

// One row's 16 accumulated channels (4 vec4 columns).
struct RowAcc {
    c0: vec4<f32>,
    c1: vec4<f32>,
    c2: vec4<f32>,
    c3: vec4<f32>,
}

fn tex_mac(acc: RowAcc, w: WBlock, a: vec4<f32>) -> RowAcc {
    return RowAcc(acc.c0 + w.c0 * a, acc.c1 + w.c1 * a, acc.c2 + w.c2 * a, acc.c3 + w.c3 * a);
}

@compute @workgroup_size(TWG)
fn conv_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= p.tiles) {
        return; // overshoot of the 2D-folded grid
    }
    let z = wid.z;
    let tmn = tile_coords(tile);
    let m0 = (tmn.x * TWG + lid) * TM;
    if (m0 >= p.m) {
        return; // whole invocation past M
    }
    let coutp4 = p.coutp / 4u;
    let n4 = tmn.y * 4u;
    // Weight columns, clamped so a partial last tile re-reads the last one (never stored).
    let col0 = min(n4, coutp4 - 1u);
    let col1 = min(n4 + 1u, coutp4 - 1u);
    let col2 = min(n4 + 2u, coutp4 - 1u);
    let col3 = min(n4 + 3u, coutp4 - 1u);
    let in_act = has_flag(FLAG_IN_ACT);
    let a_base = z * (p.a_stride / 4u);
    // This GEMM's weights, in texels (a batch's B starts w_stride elements further).
    let w0 = p.w_texel + z * (p.w_stride / 4u);

    // -inf, or 0 for the pre-activation's ReLU (see tex_a). Bitcast from a `let`, not a
    // literal: a constant expression may not be infinite, and Chrome's WGSL compiler (Tint)
    // rejects `bitcast<f32>(0xff800000u)` where naga accepts it.
    let neg_inf_bits = 0xff800000u;
    let lo = select(vec4<f32>(bitcast<f32>(neg_inf_bits)), vec4<f32>(0.0), in_act);

    var r: array<TexRow, TMAX>;
    var a: array<vec4<f32>, TMAX>;
    var acc: array<RowAcc, TMAX>;
    for (var i = 0u; i < TM; i++) {
        // Pixels past M (last tile) compute on a clamped, valid row; they are not stored.
        r[i] = tex_row(min(m0 + i, p.m - 1u));
    }
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            if (TM > 0u) { r[0] = tex_tap(r[0], ky, kx, a_base); }
            if (TM > 1u) { r[1] = tex_tap(r[1], ky, kx, a_base); }
            if (TM > 2u) { r[2] = tex_tap(r[2], ky, kx, a_base); }
            if (TM > 3u) { r[3] = tex_tap(r[3], ky, kx, a_base); }
            if (TM > 4u) { r[4] = tex_tap(r[4], ky, kx, a_base); }
            if (TM > 5u) { r[5] = tex_tap(r[5], ky, kx, a_base); }
            if (TM > 6u) { r[6] = tex_tap(r[6], ky, kx, a_base); }
            if (TM > 7u) { r[7] = tex_tap(r[7], ky, kx, a_base); }
            if (TM > 8u) { r[8] = tex_tap(r[8], ky, kx, a_base); }
            if (TM > 9u) { r[9] = tex_tap(r[9], ky, kx, a_base); }
            if (TM > 10u) { r[10] = tex_tap(r[10], ky, kx, a_base); }
            if (TM > 11u) { r[11] = tex_tap(r[11], ky, kx, a_base); }
            if (TM > 12u) { r[12] = tex_tap(r[12], ky, kx, a_base); }
            if (TM > 13u) { r[13] = tex_tap(r[13], ky, kx, a_base); }
            if (TM > 14u) { r[14] = tex_tap(r[14], ky, kx, a_base); }
            if (TM > 15u) { r[15] = tex_tap(r[15], ky, kx, a_base); }
            // Texel of the first weight row (k) of this tap.
            let krow = w0 + (ky * p.kw + kx) * p.cin * coutp4;
            for (var c4 = 0u; c4 < p.cinp / 4u; c4++) {
                var sc = vec4<f32>(1.0);
                var sh = vec4<f32>(0.0);
                if (in_act) {
                    sc = weights_texel(p.w_texel + p.act / 4u + c4);
                    sh = weights_texel(p.w_texel + (p.act + p.cinp) / 4u + c4);
                }
                if (TM > 0u) { a[0] = tex_a(r[0], c4, sc, sh, lo); }
                if (TM > 1u) { a[1] = tex_a(r[1], c4, sc, sh, lo); }
                if (TM > 2u) { a[2] = tex_a(r[2], c4, sc, sh, lo); }
                if (TM > 3u) { a[3] = tex_a(r[3], c4, sc, sh, lo); }
                if (TM > 4u) { a[4] = tex_a(r[4], c4, sc, sh, lo); }
                if (TM > 5u) { a[5] = tex_a(r[5], c4, sc, sh, lo); }
                if (TM > 6u) { a[6] = tex_a(r[6], c4, sc, sh, lo); }
                if (TM > 7u) { a[7] = tex_a(r[7], c4, sc, sh, lo); }
                if (TM > 8u) { a[8] = tex_a(r[8], c4, sc, sh, lo); }
                if (TM > 9u) { a[9] = tex_a(r[9], c4, sc, sh, lo); }
                if (TM > 10u) { a[10] = tex_a(r[10], c4, sc, sh, lo); }
                if (TM > 11u) { a[11] = tex_a(r[11], c4, sc, sh, lo); }
                if (TM > 12u) { a[12] = tex_a(r[12], c4, sc, sh, lo); }
                if (TM > 13u) { a[13] = tex_a(r[13], c4, sc, sh, lo); }
                if (TM > 14u) { a[14] = tex_a(r[14], c4, sc, sh, lo); }
                if (TM > 15u) { a[15] = tex_a(r[15], c4, sc, sh, lo); }
                let row = krow + 4u * c4 * coutp4;
                let live = p.cin - 4u * c4;
                let w = WBlock(
                    tex_w(row, col0, live),
                    tex_w(row, col1, live),
                    tex_w(row, col2, live),
                    tex_w(row, col3, live),
                );
                if (TM > 0u) { acc[0] = tex_mac(acc[0], w, a[0]); }
                if (TM > 1u) { acc[1] = tex_mac(acc[1], w, a[1]); }
                if (TM > 2u) { acc[2] = tex_mac(acc[2], w, a[2]); }
                if (TM > 3u) { acc[3] = tex_mac(acc[3], w, a[3]); }
                if (TM > 4u) { acc[4] = tex_mac(acc[4], w, a[4]); }
                if (TM > 5u) { acc[5] = tex_mac(acc[5], w, a[5]); }
                if (TM > 6u) { acc[6] = tex_mac(acc[6], w, a[6]); }
                if (TM > 7u) { acc[7] = tex_mac(acc[7], w, a[7]); }
                if (TM > 8u) { acc[8] = tex_mac(acc[8], w, a[8]); }
                if (TM > 9u) { acc[9] = tex_mac(acc[9], w, a[9]); }
                if (TM > 10u) { acc[10] = tex_mac(acc[10], w, a[10]); }
                if (TM > 11u) { acc[11] = tex_mac(acc[11], w, a[11]); }
                if (TM > 12u) { acc[12] = tex_mac(acc[12], w, a[12]); }
                if (TM > 13u) { acc[13] = tex_mac(acc[13], w, a[13]); }
                if (TM > 14u) { acc[14] = tex_mac(acc[14], w, a[14]); }
                if (TM > 15u) { acc[15] = tex_mac(acc[15], w, a[15]); }
            }
        }
    }
    // The invocation's 16 biases, fetched once for all its rows (a buffer load per row and
    // column cost ~10% on short-K layers).
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    if (!has_flag(FLAG_NO_BIAS)) {
        let b = p.w_texel + p.bias / 4u;
        b0 = weights_texel(b + col0);
        b1 = weights_texel(b + col1);
        b2 = weights_texel(b + col2);
        b3 = weights_texel(b + col3);
    }
    // The stores: one call of `store4_biased`, in a loop over the 4 columns. The epilogue is
    // outside the hot loop, but each call site inlines the whole residual / ReLU / split /
    // f16 logic, which a software rasteriser expands into long per-lane sequences: 4 call
    // sites made this pipeline's first dispatch (its LLVM compile on lavapipe) ~3x slower.
    let zc = z * p.c_stride;
    // Both loops end at a value the compiler cannot know (the rows left in M, the vec4 columns
    // left in cout), so they stay rolled: with the epilogue trimmed to its pipeline's FLAGS,
    // LLVM otherwise unrolls them and the compile grows again.
    let rows = min(TM, p.m - m0);
    let cols4 = min(4u, coutp4 - n4);
    for (var i = 0u; i < rows; i++) {
        let m = m0 + i;
        var rp = 0u;
        if (has_flag(FLAG_RESIDUAL)) {
            rp = residual_pixel(m);
        }
        let cols = array<vec4<f32>, 4>(acc[i].c0 + b0, acc[i].c1 + b1, acc[i].c2 + b2, acc[i].c3 + b3);
        for (var j = 0u; j < cols4; j++) {
            store4_biased(m, rp, 4u * (n4 + j), cols[j], zc);
        }
    }
}
