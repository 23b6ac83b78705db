// Fused convolution as an implicit GEMM over NHWC activations.
//
//   C[M, N] = A[M, K] * B[K, N],  M = batch * OH * OW (output pixels), N = Cout,
//   K = KH * KW * Cin in (kh, kw, cin) order, so each tap's slice of an A row is a contiguous
//   run of Cin floats of the NHWC input, and B is the HWIO weight matrix.
//
// Fused around it: the v2 pre-activation `relu(x * scale + shift)` on loaded input elements
// (in-bounds ones only), and in the epilogue bias, residual (stride 1 or 2), ReLU and a split
// of the output channels into a second tensor.
//
// Three entry points share the epilogue:
// * `conv_register`: no workgroup memory. All invocations of a workgroup share one tile of
//   output channels, so every weight load has a workgroup-uniform address (a software
//   rasteriser like lavapipe turns those into one scalar load + broadcast) and there is no
//   barrier (which lavapipe implements with coroutines). Each invocation accumulates
//   RTM pixels x RTN4 vec4 columns in registers. Fastest on lavapipe.
// * `conv_shared`: the classic tiled GEMM for real GPUs: a 16x16 workgroup stages an
//   SBM x SBK tile of A and an SBK x (4 * SBN4) tile of B in workgroup memory per step, each
//   invocation accumulates 4 pixels x one vec4 of channels.
// * `conv_texture`: for software rasterisers. lavapipe turns every storage-buffer load into a
//   per-lane scalar sequence (bounds check, insert, blend), whatever the address, which caps a
//   buffer GEMM near 6 GFLOP/s; a texel fetch costs a fraction of that. So this variant reads A
//   from a copy of the input tensor in an rgba32float texture and B from a texture copy of the
//   weights buffer, and each invocation accumulates TM pixels x 16 channels (64 accumulators).
//
// Structural choices are pipeline-overridable constants (few distinct pipelines); every shape,
// offset and flag is in the uniform.

struct Params {
    m: u32,          // GEMM rows: batch * oh * ow
    cout: u32,       // GEMM columns
    cin: u32,
    coutp4: u32,     // pad4(cout) / 4: vec4 stride of one weight row
    h: u32,          // input height
    w: u32,          // input width
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    in_off: u32,     // element offsets of the tensors in the arena
    out_off: u32,
    res_off: u32,
    split_off: u32,
    at: u32,         // main output channels (= cout without a split)
    res_h: u32,
    res_w: u32,
    res_stride: u32,
    flags: u32,      // FLAG_*
    bias4: u32,      // vec4 index of the bias in `consts`
    act4: u32,       // vec4 index of the in_act scale; the shift follows at act4 + cinp4
    cinp4: u32,      // pad4(cin) / 4
    tiles_n: u32,    // workgroup tiles along N
    tiles: u32,      // workgroup tiles in all (the grid may be folded into 2D and overshoot)
    w_texel: u32,    // texture variant: texel index of this op's constants in `weights_tex`
    _pad1: u32,
}

const FLAG_IN_ACT: u32 = 1u;
const FLAG_RESIDUAL: u32 = 2u;
const FLAG_RELU: u32 = 4u;
const FLAG_SPLIT_RELU: u32 = 8u;
const FLAG_M_FASTEST: u32 = 16u;

// Input channels are a multiple of 4: read activations 4 channels at a time and multiply by 4
// weight rows per step (fewer loop iterations, vec4 FMAs).
override VEC4: bool = false;
// 1x1, stride 1, pad 0: A is the input tensor itself (row m at m * cin), so skip all the
// im2col index math and padding checks.
override IS_1X1: bool = false;
// Invocations per workgroup of the register-only variant (one output pixel each).
override RWG: u32 = 32u;
// Bounds checks for partial tiles. The plan sets it false when the tiles divide M and N (and K
// for the shared variant) and cout is a multiple of a tile's channels, which compiles them out.
override CHECKS: bool = true;

@group(0) @binding(0) var<uniform> p: Params;
// The one activation arena, read_write: every tensor of the plan lives in it, so inputs,
// residuals and outputs are all reached through this single binding (binding one buffer as
// both read-only and read_write storage in one dispatch is a usage conflict). It is scalar
// f32 rather than vec4 because outputs with cout % 4 != 0 need scalar stores and a second
// vec4 view of the same buffer would alias a writable binding; "vec4 loads" of activations are
// therefore four consecutive scalar loads.
@group(0) @binding(1) var<storage, read_write> arena: array<f32>;
// This op's slot of the weights buffer, laid out by `Op::constants()` with every section
// padded to 4 floats: weight [K][pad4(cout)] | bias [pad4(cout)] | scale [pad4(cin)] | shift.
@group(0) @binding(2) var<storage, read> consts: array<vec4<f32>>;

fn has_flag(f: u32) -> bool {
    return (p.flags & f) != 0u;
}

// ReLU that keeps NaN, as the frameworks' relu does: `max(x, 0.0)` may return 0 for a NaN
// (LLVM's maxnum does), which would turn a broken value into a confident, finite answer.
fn relu(x: f32) -> f32 {
    return select(x, 0.0, x < 0.0);
}

fn relu4(x: vec4<f32>) -> vec4<f32> {
    return select(x, vec4<f32>(0.0), x < vec4<f32>(0.0));
}

// Bias, residual, ReLU and the split for output pixel `m`, channels 4 * n4 .. 4 * n4 + 3.
// The caller guarantees m < M; channels >= cout (padding of the last vec4) are dropped.
fn store4(m: u32, n4: u32, v: vec4<f32>) {
    if (CHECKS && n4 * 4u >= p.cout) {
        return;
    }
    store4_biased(m, residual_pixel(m), n4, v + consts[p.bias4 + n4]);
}

// The residual's pixel for output pixel `m` (0 without a residual). The residual may be the
// block input at twice the resolution (subsampled identity shortcut x[:, ::2, ::2]), so it is
// indexed by its own shape.
fn residual_pixel(m: u32) -> u32 {
    if (!has_flag(FLAG_RESIDUAL)) {
        return 0u;
    }
    let hw = p.oh * p.ow;
    let img = m / hw;
    let rem = m % hw;
    let ry = (rem / p.ow) * p.res_stride;
    let rx = (rem % p.ow) * p.res_stride;
    return (img * p.res_h + ry) * p.res_w + rx;
}

// As `store4`, for a value that already includes the bias; `res_pix` = residual_pixel(m).
fn store4_biased(m: u32, res_pix: u32, n4: u32, r: vec4<f32>) {
    let c0 = n4 * 4u;
    if (CHECKS && c0 >= p.cout) {
        return;
    }
    let split_c = p.cout - p.at;
    for (var j = 0u; j < 4u; j++) {
        let c = c0 + j;
        if (CHECKS && c >= p.cout) {
            break;
        }
        var x = r[j];
        if (c < p.at) {
            if (has_flag(FLAG_RESIDUAL)) {
                x += arena[p.res_off + res_pix * p.at + c];
            }
            if (has_flag(FLAG_RELU)) {
                x = relu(x);
            }
            arena[p.out_off + m * p.at + c] = x;
        } else {
            if (has_flag(FLAG_SPLIT_RELU)) {
                x = relu(x);
            }
            arena[p.split_off + m * split_c + (c - p.at)] = x;
        }
    }
}

// (M tile, N tile) of a linear workgroup index. Consecutive workgroups run close together in
// time and share cache: when the weights are the larger operand (late layers: small maps,
// many channels) walk M fastest so they reuse one tile of weight columns, otherwise N fastest
// so they reuse the same input pixels. (Measured on lavapipe: +20-25% on 7x7x512 layers.)
fn tile_coords(tile: u32) -> vec2<u32> {
    if (has_flag(FLAG_M_FASTEST)) {
        let tiles_m = p.tiles / p.tiles_n;
        return vec2<u32>(tile % tiles_m, tile / tiles_m);
    }
    return vec2<u32>(tile / p.tiles_n, tile % p.tiles_n);
}

fn act_scale4(c: u32) -> vec4<f32> {
    return consts[p.act4 + c / 4u];
}

fn act_shift4(c: u32) -> vec4<f32> {
    return consts[p.act4 + p.cinp4 + c / 4u];
}

fn act_scale(c: u32) -> f32 {
    return consts[p.act4 + c / 4u][c % 4u];
}

fn act_shift(c: u32) -> f32 {
    return consts[p.act4 + p.cinp4 + c / 4u][c % 4u];
}

fn load4(i: u32) -> vec4<f32> {
    return vec4<f32>(arena[i], arena[i + 1u], arena[i + 2u], arena[i + 3u]);
}

// ---------------------------------------------------------------------------------------------
// Register-only variant.

// Tile sizes, from a sweep on lavapipe (2 cores, AVX2): 1 pixel x 8 channels per invocation
// and 32 invocations per workgroup beat every larger register tile (1x16, 2x8, 4x8, 4x16,
// 8x4: 30-60% slower, the accumulators spill out of the 16 vector registers) and every larger
// workgroup. They are `const`, not overrides, because they size private arrays.
const RTM: u32 = 1u;  // output pixels per invocation
const RTN4: u32 = 2u; // vec4 columns (4 channels each) per invocation

@compute @workgroup_size(RWG)
fn conv_register(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= p.tiles) {
        return; // overshoot of the 2D-folded grid
    }
    let tmn = tile_coords(tile);
    let tm = tmn.x;
    let tn = tmn.y;
    // Consecutive pixels per invocation, so the invocations past M form whole trailing SIMD
    // groups that return here instead of computing masked-off work.
    let m0 = (tm * RWG + lid) * RTM;
    if (CHECKS && m0 >= p.m) {
        return;
    }
    // This tile's weight columns, clamped so a partial last tile re-reads the last column
    // instead of running past the row (those results are never stored).
    var col: array<u32, RTN4>;
    for (var j = 0u; j < RTN4; j++) {
        col[j] = select(tn * RTN4 + j, min(tn * RTN4 + j, p.coutp4 - 1u), CHECKS);
    }
    let in_act = has_flag(FLAG_IN_ACT);

    var acc: array<vec4<f32>, RTM * RTN4>;
    var base: array<u32, RTM>;   // arena index of the current tap's input pixel
    var valid: array<bool, RTM>; // whether that pixel is inside the input (else zero padding)
    var iy0: array<i32, RTM>;
    var ix0: array<i32, RTM>;
    var img_row: array<u32, RTM>;
    for (var i = 0u; i < RTM; i++) {
        // Pixels past M (last tile) compute on a clamped, valid row; they are not stored.
        let m = select(m0 + i, min(m0 + i, p.m - 1u), CHECKS);
        valid[i] = true;
        if (IS_1X1) {
            base[i] = p.in_off + m * p.cin;
        } else {
            let hw = p.oh * p.ow;
            let rem = m % hw;
            img_row[i] = (m / hw) * p.h;
            iy0[i] = i32((rem / p.ow) * p.stride) - i32(p.pad);
            ix0[i] = i32((rem % p.ow) * p.stride) - i32(p.pad);
        }
    }
    let taps_y = select(p.kh, 1u, IS_1X1);
    let taps_x = select(p.kw, 1u, IS_1X1);
    for (var ky = 0u; ky < taps_y; ky++) {
        for (var kx = 0u; kx < taps_x; kx++) {
            if (!IS_1X1) {
                for (var i = 0u; i < RTM; i++) {
                    let iy = iy0[i] + i32(ky);
                    let ix = ix0[i] + i32(kx);
                    valid[i] = iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w);
                    // Out-of-bounds taps read a harmless in-bounds address and are zeroed
                    // after the pre-activation below.
                    base[i] = select(
                        p.in_off,
                        p.in_off + ((img_row[i] + u32(iy)) * p.w + u32(ix)) * p.cin,
                        valid[i],
                    );
                }
            }
            let krow = (ky * p.kw + kx) * p.cin; // first GEMM row (k) of this tap
            if (VEC4) {
                for (var c = 0u; c < p.cin; c += 4u) {
                    var sc = vec4<f32>(1.0);
                    var sh = vec4<f32>(0.0);
                    if (in_act) {
                        sc = act_scale4(c);
                        sh = act_shift4(c);
                    }
                    let wr = (krow + c) * p.coutp4;
                    for (var i = 0u; i < RTM; i++) {
                        var x = load4(base[i] + c);
                        if (in_act) {
                            x = relu4(fma(x, sc, sh));
                        }
                        // Zero padding pads the *pre-activated* map: zero after the act.
                        x = select(vec4<f32>(0.0), x, valid[i]);
                        for (var j = 0u; j < RTN4; j++) {
                            let w0 = consts[wr + col[j]];
                            let w1 = consts[wr + p.coutp4 + col[j]];
                            let w2 = consts[wr + 2u * p.coutp4 + col[j]];
                            let w3 = consts[wr + 3u * p.coutp4 + col[j]];
                            var a = acc[i * RTN4 + j];
                            a = fma(vec4<f32>(x.x), w0, a);
                            a = fma(vec4<f32>(x.y), w1, a);
                            a = fma(vec4<f32>(x.z), w2, a);
                            a = fma(vec4<f32>(x.w), w3, a);
                            acc[i * RTN4 + j] = a;
                        }
                    }
                }
            } else {
                for (var c = 0u; c < p.cin; c++) {
                    var sc = 1.0;
                    var sh = 0.0;
                    if (in_act) {
                        sc = act_scale(c);
                        sh = act_shift(c);
                    }
                    let wr = (krow + c) * p.coutp4;
                    for (var i = 0u; i < RTM; i++) {
                        var x = arena[base[i] + c];
                        if (in_act) {
                            x = relu(fma(x, sc, sh));
                        }
                        x = select(0.0, x, valid[i]);
                        for (var j = 0u; j < RTN4; j++) {
                            acc[i * RTN4 + j] = fma(vec4<f32>(x), consts[wr + col[j]], acc[i * RTN4 + j]);
                        }
                    }
                }
            }
        }
    }
    for (var i = 0u; i < RTM; i++) {
        let m = m0 + i;
        if (!CHECKS || m < p.m) {
            for (var j = 0u; j < RTN4; j++) {
                store4(m, tn * RTN4 + j, acc[i * RTN4 + j]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared-memory variant: 16 x 16 invocations, tile SBM pixels x 4*SBN4 channels, K step SBK.

const SBM: u32 = 64u;
const SBN4: u32 = 16u;
const SBK: u32 = 16u;

var<workgroup> sa: array<f32, SBK * SBM>;        // A tile, [k][m]
var<workgroup> sb: array<vec4<f32>, SBK * SBN4>; // B tile, [k][n4]

// One GEMM row (output pixel) of the A tile that an invocation stages at every K step: its
// coordinates are decomposed once, outside the K loop (integer division is slow on GPUs).
struct Row {
    ok: bool,     // m < M (rows past M stage zeros)
    base: u32,    // 1x1 path: arena index of the input row
    img_row: u32, // image * input height
    iy0: i32,     // top-left input position of the window
    ix0: i32,
}

fn make_row(m: u32) -> Row {
    var r: Row;
    r.ok = m < p.m;
    let mc = min(m, p.m - 1u);
    r.base = p.in_off + mc * p.cin;
    let hw = p.oh * p.ow;
    let rem = mc % hw;
    r.img_row = (mc / hw) * p.h;
    r.iy0 = i32((rem / p.ow) * p.stride) - i32(p.pad);
    r.ix0 = i32((rem % p.ow) * p.stride) - i32(p.pad);
    return r;
}

// Arena index of A[row, k] and its input channel, or -1 for a tap in the zero padding.
fn a_index(r: Row, k: u32) -> vec2<i32> {
    if (IS_1X1) {
        return vec2<i32>(i32(r.base + k), i32(k));
    }
    let c = k % p.cin;
    let t = k / p.cin;
    let iy = r.iy0 + i32(t / p.kw);
    let ix = r.ix0 + i32(t % p.kw);
    if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
        return vec2<i32>(-1, 0);
    }
    return vec2<i32>(i32(p.in_off + ((r.img_row + u32(iy)) * p.w + u32(ix)) * p.cin + c), i32(c));
}

// A[row, k] with the pre-activation applied; 0 outside M x K (so partial tiles add nothing)
// and for taps in the zero padding (which pads the pre-activated map, hence after the act).
fn load_a(r: Row, k: u32, k_total: u32) -> f32 {
    if (CHECKS && (!r.ok || k >= k_total)) {
        return 0.0;
    }
    let ic = a_index(r, k);
    if (ic.x < 0) {
        return 0.0;
    }
    var x = arena[u32(ic.x)];
    if (has_flag(FLAG_IN_ACT)) {
        x = relu(fma(x, act_scale(u32(ic.y)), act_shift(u32(ic.y))));
    }
    return x;
}

// A[row, k .. k + 3] (cin % 4 == 0 and k % 4 == 0, so the 4 columns are 4 channels of one tap).
fn load_a4(r: Row, k: u32, k_total: u32) -> vec4<f32> {
    if (CHECKS && (!r.ok || k >= k_total)) {
        return vec4<f32>(0.0);
    }
    let ic = a_index(r, k);
    if (ic.x < 0) {
        return vec4<f32>(0.0);
    }
    var x = load4(u32(ic.x));
    if (has_flag(FLAG_IN_ACT)) {
        x = relu4(fma(x, act_scale4(u32(ic.y)), act_shift4(u32(ic.y))));
    }
    return x;
}

@compute @workgroup_size(16, 16)
fn conv_shared(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= p.tiles) {
        return; // whole workgroup: overshoot of the 2D-folded grid
    }
    let tmn = tile_coords(tile);
    let tm = tmn.x;
    let tn = tmn.y;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let k_total = p.kh * p.kw * p.cin;
    // The A rows this invocation stages (fixed across K steps): VEC4 stages one vec4 of row
    // lid / 4 per step, the scalar path 4 scalars of rows lid / 16 + 16 r.
    var rows: array<Row, 4>;
    for (var r = 0u; r < select(4u, 1u, VEC4); r++) {
        rows[r] = make_row(tm * SBM + select(lid / SBK + 16u * r, lid / (SBK / 4u), VEC4));
    }
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k_total; k0 += SBK) {
        // Stage A: consecutive invocations read consecutive k (contiguous channels) of a pixel.
        if (VEC4) {
            let kq = lid % (SBK / 4u);
            let mm = lid / (SBK / 4u);
            let v = load_a4(rows[0], k0 + kq * 4u, k_total);
            sa[(kq * 4u) * SBM + mm] = v.x;
            sa[(kq * 4u + 1u) * SBM + mm] = v.y;
            sa[(kq * 4u + 2u) * SBM + mm] = v.z;
            sa[(kq * 4u + 3u) * SBM + mm] = v.w;
        } else {
            let kk = lid % SBK;
            for (var r = 0u; r < 4u; r++) {
                sa[kk * SBM + lid / SBK + 16u * r] = load_a(rows[r], k0 + kk, k_total);
            }
        }
        // Stage B: one vec4 per invocation; zero past K and past the padded channels.
        {
            let kk = lid / SBN4;
            let n4 = tn * SBN4 + lid % SBN4;
            let k = k0 + kk;
            var v = vec4<f32>(0.0);
            if (!CHECKS || (k < k_total && n4 < p.coutp4)) {
                v = consts[k * p.coutp4 + n4];
            }
            sb[lid] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < SBK; kk++) {
            let b = sb[kk * SBN4 + tx];
            for (var i = 0u; i < 4u; i++) {
                acc[i] = fma(vec4<f32>(sa[kk * SBM + ty * 4u + i]), b, acc[i]);
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = tm * SBM + ty * 4u + i;
        if (!CHECKS || m < p.m) {
            store4(m, tn * SBN4 + tx, acc[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Texture variant: A and B as texel fetches, TM pixels x TN4 vec4 columns per invocation.
//
// Both textures are rgba32float, TEX_WIDTH texels wide, and hold a linear array of vec4: texel
// i is at (i % TEX_WIDTH, i / TEX_WIDTH). `input_tex` holds the op's input tensor, NHWC with
// each pixel's channels zero-padded to cinp4 texels (staged just before the dispatch: copied
// from the arena when cin % 4 == 0, else packed by texture.wgsl), `weights_tex` the whole
// weights buffer of the op (its constants start at texel p.w_texel).
//
// Every conv takes the general im2col path with bounds checks (a 1x1 path and unchecked
// tiles measured no faster), so a pipeline is specialised only by TM: each takes lavapipe
// ~25 s to compile on a cold shader cache.
//
// The rows are unrolled by hand (`if (TM > i)` on an override, so a pipeline keeps only the
// rows it uses): a loop over a private array of rows is not unrolled by Mesa's compiler, and
// the array then lives in scratch memory (measured on lavapipe, 16x16 tile of a 1x1 GEMM: 16
// GFLOP/s as a loop, 37 GFLOP/s unrolled). The same measurement found that loading the A
// texels of all rows first and then doing the multiply-adds is much faster (37 vs 23 GFLOP/s)
// than interleaving a row's loads with its multiply-adds.

const TEX_WIDTH: u32 = 4096u;
const TEX_SHIFT: u32 = 12u; // log2(TEX_WIDTH)
const TMAX: u32 = 16u;      // most pixels per invocation
const TN4: u32 = 4u;        // vec4 columns per invocation
// Pixels per invocation, 1..=TMAX.
override TM: u32 = 16u;

@group(0) @binding(3) var input_tex: texture_2d<f32>;
@group(0) @binding(4) var weights_tex: texture_2d<f32>;

fn input_texel(i: u32) -> vec4<f32> {
    return textureLoad(input_tex, vec2<u32>(i & (TEX_WIDTH - 1u), i >> TEX_SHIFT), 0);
}

fn weights_texel(i: u32) -> vec4<f32> {
    return textureLoad(weights_tex, vec2<u32>(i & (TEX_WIDTH - 1u), i >> TEX_SHIFT), 0);
}

// One output pixel's input window.
struct TexRow {
    base: u32,    // texel of channel 0 of the current tap's input pixel (0 in the padding)
    ok: bool,     // that pixel is inside the input
    img_row: u32, // image * input height
    iy0: i32,     // top-left input position of the window
    ix0: i32,
}

fn tex_row(m0: u32, i: u32) -> TexRow {
    // Pixels past M (last tile) compute on a clamped, valid row; they are not stored.
    let m = min(m0 + i, p.m - 1u);
    var r: TexRow;
    r.ok = true;
    r.base = m * p.cinp4;
    let hw = p.oh * p.ow;
    let rem = m % hw;
    r.img_row = (m / hw) * p.h;
    r.iy0 = i32((rem / p.ow) * p.stride) - i32(p.pad);
    r.ix0 = i32((rem % p.ow) * p.stride) - i32(p.pad);
    return r;
}

// The row at tap (ky, kx). (Values rather than pointer parameters: naga's SPIR-V writer
// panics on a pointer to an array element passed to a function, gfx-rs/wgpu#6875.)
fn tex_tap(r: TexRow, ky: u32, kx: u32) -> TexRow {
    var t = r;
    let iy = r.iy0 + i32(ky);
    let ix = r.ix0 + i32(kx);
    t.ok = iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w);
    t.base = select(0u, ((r.img_row + u32(iy)) * p.w + u32(ix)) * p.cinp4, t.ok);
    return t;
}

// A[row, 4 channels of this tap], pre-activated, zero in the padding (which pads the
// pre-activated map, hence after the act).
// Branch-free: without a pre-activation sc = 1, sh = 0 and `act` false leave x unchanged,
// which costs 3 vector ops against the row's 16 vec4 FMAs but keeps the loop body one basic
// block (a per-row branch made Mesa's compile of this already large shader much slower).
fn tex_a(r: TexRow, c4: u32, sc: vec4<f32>, sh: vec4<f32>, act: bool) -> vec4<f32> {
    let y = fma(input_texel(r.base + c4), sc, sh);
    let x = select(y, relu4(y), act);
    return select(vec4<f32>(0.0), x, r.ok);
}

// The weights of 4 consecutive k (one vec4 of input channels) for TN4 vec4 columns: matrix j
// has the 4 weight rows as columns, so `w.c[j] * a` is the 4 x 4 block's product.
struct WBlock {
    c0: mat4x4<f32>,
    c1: mat4x4<f32>,
    c2: mat4x4<f32>,
    c3: mat4x4<f32>,
}

// `live`: how many of the 4 rows are this tap's (4 unless cin % 4 != 0, where the rest belong
// to the next tap or, after the last, to the bias; they are zeroed, so a padding channel adds
// nothing whatever it holds).
fn tex_w(row: u32, col: u32, live: u32) -> mat4x4<f32> {
    let s = p.coutp4;
    let z = vec4<f32>(0.0);
    return mat4x4<f32>(
        weights_texel(row + col),
        select(z, weights_texel(row + s + col), live > 1u),
        select(z, weights_texel(row + 2u * s + col), live > 2u),
        select(z, weights_texel(row + 3u * s + col), live > 3u),
    );
}

// TN4 vec4 accumulators of one pixel.
struct RowAcc {
    c0: vec4<f32>,
    c1: vec4<f32>,
    c2: vec4<f32>,
    c3: vec4<f32>,
}

fn tex_mac(acc: RowAcc, w: WBlock, a: vec4<f32>) -> RowAcc {
    return RowAcc(acc.c0 + w.c0 * a, acc.c1 + w.c1 * a, acc.c2 + w.c2 * a, acc.c3 + w.c3 * a);
}

// `bias`: this invocation's 16 biases, fetched once for all its rows (a buffer load per row
// and column cost ~10% on short-K layers).
fn tex_store(m: u32, n4: u32, acc: RowAcc, bias: RowAcc) {
    if (m >= p.m) {
        return;
    }
    let rp = residual_pixel(m);
    store4_biased(m, rp, n4, acc.c0 + bias.c0);
    store4_biased(m, rp, n4 + 1u, acc.c1 + bias.c1);
    store4_biased(m, rp, n4 + 2u, acc.c2 + bias.c2);
    store4_biased(m, rp, n4 + 3u, acc.c3 + bias.c3);
}

@compute @workgroup_size(RWG)
fn conv_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= p.tiles) {
        return; // overshoot of the 2D-folded grid
    }
    let tmn = tile_coords(tile);
    let m0 = (tmn.x * RWG + lid) * TM;
    if (m0 >= p.m) {
        return; // whole invocation past M
    }
    let n4 = tmn.y * TN4;
    // Weight columns, clamped so a partial last tile re-reads the last one (never stored).
    let col0 = min(n4, p.coutp4 - 1u);
    let col1 = min(n4 + 1u, p.coutp4 - 1u);
    let col2 = min(n4 + 2u, p.coutp4 - 1u);
    let col3 = min(n4 + 3u, p.coutp4 - 1u);
    let in_act = has_flag(FLAG_IN_ACT);

    var r: array<TexRow, TMAX>;
    var a: array<vec4<f32>, TMAX>;
    var acc: array<RowAcc, TMAX>;
    if (TM > 0u) { r[0] = tex_row(m0, 0u); }
    if (TM > 1u) { r[1] = tex_row(m0, 1u); }
    if (TM > 2u) { r[2] = tex_row(m0, 2u); }
    if (TM > 3u) { r[3] = tex_row(m0, 3u); }
    if (TM > 4u) { r[4] = tex_row(m0, 4u); }
    if (TM > 5u) { r[5] = tex_row(m0, 5u); }
    if (TM > 6u) { r[6] = tex_row(m0, 6u); }
    if (TM > 7u) { r[7] = tex_row(m0, 7u); }
    if (TM > 8u) { r[8] = tex_row(m0, 8u); }
    if (TM > 9u) { r[9] = tex_row(m0, 9u); }
    if (TM > 10u) { r[10] = tex_row(m0, 10u); }
    if (TM > 11u) { r[11] = tex_row(m0, 11u); }
    if (TM > 12u) { r[12] = tex_row(m0, 12u); }
    if (TM > 13u) { r[13] = tex_row(m0, 13u); }
    if (TM > 14u) { r[14] = tex_row(m0, 14u); }
    if (TM > 15u) { r[15] = tex_row(m0, 15u); }

    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            // Each row's input pixel at this tap.
            if (TM > 0u) { r[0] = tex_tap(r[0], ky, kx); }
            if (TM > 1u) { r[1] = tex_tap(r[1], ky, kx); }
            if (TM > 2u) { r[2] = tex_tap(r[2], ky, kx); }
            if (TM > 3u) { r[3] = tex_tap(r[3], ky, kx); }
            if (TM > 4u) { r[4] = tex_tap(r[4], ky, kx); }
            if (TM > 5u) { r[5] = tex_tap(r[5], ky, kx); }
            if (TM > 6u) { r[6] = tex_tap(r[6], ky, kx); }
            if (TM > 7u) { r[7] = tex_tap(r[7], ky, kx); }
            if (TM > 8u) { r[8] = tex_tap(r[8], ky, kx); }
            if (TM > 9u) { r[9] = tex_tap(r[9], ky, kx); }
            if (TM > 10u) { r[10] = tex_tap(r[10], ky, kx); }
            if (TM > 11u) { r[11] = tex_tap(r[11], ky, kx); }
            if (TM > 12u) { r[12] = tex_tap(r[12], ky, kx); }
            if (TM > 13u) { r[13] = tex_tap(r[13], ky, kx); }
            if (TM > 14u) { r[14] = tex_tap(r[14], ky, kx); }
            if (TM > 15u) { r[15] = tex_tap(r[15], ky, kx); }
            // Texel of the first weight row (k) of this tap.
            let krow = p.w_texel + (ky * p.kw + kx) * p.cin * p.coutp4;
            for (var c4 = 0u; c4 < p.cinp4; c4++) {
                var sc = vec4<f32>(1.0);
                var sh = vec4<f32>(0.0);
                if (in_act) {
                    sc = weights_texel(p.w_texel + p.act4 + c4);
                    sh = weights_texel(p.w_texel + p.act4 + p.cinp4 + c4);
                }
                if (TM > 0u) { a[0] = tex_a(r[0], c4, sc, sh, in_act); }
                if (TM > 1u) { a[1] = tex_a(r[1], c4, sc, sh, in_act); }
                if (TM > 2u) { a[2] = tex_a(r[2], c4, sc, sh, in_act); }
                if (TM > 3u) { a[3] = tex_a(r[3], c4, sc, sh, in_act); }
                if (TM > 4u) { a[4] = tex_a(r[4], c4, sc, sh, in_act); }
                if (TM > 5u) { a[5] = tex_a(r[5], c4, sc, sh, in_act); }
                if (TM > 6u) { a[6] = tex_a(r[6], c4, sc, sh, in_act); }
                if (TM > 7u) { a[7] = tex_a(r[7], c4, sc, sh, in_act); }
                if (TM > 8u) { a[8] = tex_a(r[8], c4, sc, sh, in_act); }
                if (TM > 9u) { a[9] = tex_a(r[9], c4, sc, sh, in_act); }
                if (TM > 10u) { a[10] = tex_a(r[10], c4, sc, sh, in_act); }
                if (TM > 11u) { a[11] = tex_a(r[11], c4, sc, sh, in_act); }
                if (TM > 12u) { a[12] = tex_a(r[12], c4, sc, sh, in_act); }
                if (TM > 13u) { a[13] = tex_a(r[13], c4, sc, sh, in_act); }
                if (TM > 14u) { a[14] = tex_a(r[14], c4, sc, sh, in_act); }
                if (TM > 15u) { a[15] = tex_a(r[15], c4, sc, sh, in_act); }
                let row = krow + 4u * c4 * p.coutp4;
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
    let b = p.w_texel + p.bias4;
    let bias = RowAcc(
        weights_texel(b + col0),
        weights_texel(b + col1),
        weights_texel(b + col2),
        weights_texel(b + col3),
    );
    if (TM > 0u) { tex_store(m0, n4, acc[0], bias); }
    if (TM > 1u) { tex_store(m0 + 1u, n4, acc[1], bias); }
    if (TM > 2u) { tex_store(m0 + 2u, n4, acc[2], bias); }
    if (TM > 3u) { tex_store(m0 + 3u, n4, acc[3], bias); }
    if (TM > 4u) { tex_store(m0 + 4u, n4, acc[4], bias); }
    if (TM > 5u) { tex_store(m0 + 5u, n4, acc[5], bias); }
    if (TM > 6u) { tex_store(m0 + 6u, n4, acc[6], bias); }
    if (TM > 7u) { tex_store(m0 + 7u, n4, acc[7], bias); }
    if (TM > 8u) { tex_store(m0 + 8u, n4, acc[8], bias); }
    if (TM > 9u) { tex_store(m0 + 9u, n4, acc[9], bias); }
    if (TM > 10u) { tex_store(m0 + 10u, n4, acc[10], bias); }
    if (TM > 11u) { tex_store(m0 + 11u, n4, acc[11], bias); }
    if (TM > 12u) { tex_store(m0 + 12u, n4, acc[12], bias); }
    if (TM > 13u) { tex_store(m0 + 13u, n4, acc[13], bias); }
    if (TM > 14u) { tex_store(m0 + 14u, n4, acc[14], bias); }
    if (TM > 15u) { tex_store(m0 + 15u, n4, acc[15], bias); }
}
