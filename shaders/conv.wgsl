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
// Two entry points share the epilogue:
// * `conv_register`: no workgroup memory. All invocations of a workgroup share one tile of
//   output channels, so every weight load has a workgroup-uniform address (a software
//   rasteriser like lavapipe turns those into one scalar load + broadcast) and there is no
//   barrier (which lavapipe implements with coroutines). Each invocation accumulates
//   RTM pixels x RTN4 vec4 columns in registers. Fastest on lavapipe.
// * `conv_shared`: the classic tiled GEMM for real GPUs: a 16x16 workgroup stages an
//   SBM x SBK tile of A and an SBK x (4 * SBN4) tile of B in workgroup memory per step, each
//   invocation accumulates 4 pixels x one vec4 of channels.
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
    _pad0: u32,
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

// Bias, residual, ReLU and the split for output pixel `m`, channels 4 * n4 .. 4 * n4 + 3.
// The caller guarantees m < M; channels >= cout (padding of the last vec4) are dropped.
fn store4(m: u32, n4: u32, v: vec4<f32>) {
    let c0 = n4 * 4u;
    if (CHECKS && c0 >= p.cout) {
        return;
    }
    let r = v + consts[p.bias4 + n4];
    var res_pix = 0u;
    if (has_flag(FLAG_RESIDUAL)) {
        // The residual may be the block input at twice the resolution (subsampled identity
        // shortcut x[:, ::2, ::2]), so index it by its own shape.
        let hw = p.oh * p.ow;
        let img = m / hw;
        let rem = m % hw;
        let ry = (rem / p.ow) * p.res_stride;
        let rx = (rem % p.ow) * p.res_stride;
        res_pix = (img * p.res_h + ry) * p.res_w + rx;
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
                x = max(x, 0.0);
            }
            arena[p.out_off + m * p.at + c] = x;
        } else {
            if (has_flag(FLAG_SPLIT_RELU)) {
                x = max(x, 0.0);
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
                            x = max(fma(x, sc, sh), vec4<f32>(0.0));
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
                            x = max(fma(x, sc, sh), 0.0);
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
        x = max(fma(x, act_scale(u32(ic.y)), act_shift(u32(ic.y))), 0.0);
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
        x = max(fma(x, act_scale4(u32(ic.y)), act_shift4(u32(ic.y))), vec4<f32>(0.0));
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
