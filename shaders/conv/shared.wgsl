// Workgroup-memory conv variant (`conv_shared`): the tiled GEMM for real GPUs.
//
// A workgroup of WG_M x WG_N invocations computes a BM x BN tile of C (BM = WG_M * TM output
// pixels, BN = WG_N * TN4 * 4 channels); each invocation TM pixels x TN4 vec4 columns, so
// TM * TN4 * 4 accumulators. Per K step of BK the workgroup stages A as [BM][BK/4] vec4 (one
// pixel's 4 consecutive k, exactly as they are loaded) and B as [BK][BN/4] vec4 in workgroup
// memory; the inner loop then reads both as vec4: per 4 k, TM vec4 of A (broadcast across the
// invocations of a row) and 4 * TN4 vec4 of B for 16 * TM * TN4 multiply-adds.
//
// The next K tile's global loads are issued into registers before the current tile's
// multiply-adds (register prefetch), which overlaps their latency with math while keeping one
// workgroup buffer: 16 KiB at the largest tile, WebGPU's guaranteed minimum.
//
// Columns are strided across invocations (invocation tx owns vec4 columns tx + WG_N * j), so
// a row of invocations reads consecutive vec4 of B: no bank conflicts.
//
// SPLIT_K: workgroup z computes the K range [z * k_chunk, (z + 1) * k_chunk) and stores raw
// partial sums to the plan's scratch tensor, [z][M][coutp], at out_off; `splitk_reduce` then
// sums the slices and applies the epilogue (bias, residual, ReLU, split). For layers whose
// output has too few tiles to fill a GPU (7x7 maps at batch 1).

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override TM: u32 = 8u;   // pixels per invocation, <= TM_MAX
override TN4: u32 = 2u;  // vec4 columns per invocation, <= TN4_MAX
override BK: u32 = 16u;  // K per staged tile, a multiple of 4, <= BK_MAX
override VEC4: bool = false;
override IS_1X1: bool = false;
override CHECKS: bool = true;
override SPLIT_K: bool = false;

// Array sizes (WGSL sizes private and workgroup arrays with constants); the planner's
// configurations stay within them (`SHARED_CONFIGS` in src/plan/kernel.rs).
const TM_MAX: u32 = 8u;
const TN4_MAX: u32 = 2u;
const BK_MAX: u32 = 16u;
const BM_MAX: u32 = 128u;
const BN4_MAX: u32 = 32u;
const STAGE_MAX: u32 = 4u; // vec4 of A (and of B) each invocation stages per K tile

var<workgroup> sa: array<vec4<f32>, BM_MAX * BK_MAX / 4u>; // A tile, [m][k / 4]
var<workgroup> sb: array<vec4<f32>, BK_MAX * BN4_MAX>;    // B tile, [k][n4]

// One GEMM row (output pixel) of the A tile that an invocation stages at every K step: its
// coordinates are decomposed once, outside the K loop (integer division is slow on GPUs).
struct Row {
    ok: bool,    // m < M (rows past M stage zeros)
    base: u32,   // 1x1 path: element index of the input row
    win: Window, // common.wgsl's row addressing
}

fn make_row(m: u32, in_off: u32) -> Row {
    let mc = min(m, p.m - 1u);
    return Row(m < p.m, in_off + mc * p.cin, window(mc));
}

// Element index of A[row, k] and its input channel, or -1 for a tap in the zero padding.
fn a_index(r: Row, k: u32, in_off: u32) -> vec2<i32> {
    if (IS_1X1) {
        return vec2<i32>(i32(r.base + k), i32(k));
    }
    let c = k % p.cin;
    let t = k / p.cin;
    let at = tap(r.win, t / p.kw, t % p.kw);
    if (!at.ok) {
        return vec2<i32>(-1, 0);
    }
    return vec2<i32>(i32(in_off + at.pixel * p.cin + c), i32(c));
}

// A[row, k] with the pre-activation applied; 0 past M and K (so partial tiles add nothing)
// and for taps in the zero padding (which pads the pre-activated map, hence after the act).
fn load_a(r: Row, k: u32, k_end: u32, in_off: u32) -> f32 {
    if (CHECKS && (!r.ok || k >= k_end)) {
        return 0.0;
    }
    let ic = a_index(r, k, in_off);
    if (ic.x < 0) {
        return 0.0;
    }
    var x = a_load(u32(ic.x));
    if (has_flag(FLAG_IN_ACT)) {
        x = relu(fma(x, act_scale(u32(ic.y)), act_shift(u32(ic.y))));
    }
    return x;
}

// A[row, k .. k + 3]: one vec4 load when cin % 4 == 0 (the 4 columns are 4 channels of one
// tap), else 4 scalar loads (the stem's 3 channels: k .. k + 3 may span two taps).
fn load_a4(r: Row, k: u32, k_end: u32, in_off: u32) -> vec4<f32> {
    if (!VEC4) {
        return vec4<f32>(
            load_a(r, k, k_end, in_off),
            load_a(r, k + 1u, k_end, in_off),
            load_a(r, k + 2u, k_end, in_off),
            load_a(r, k + 3u, k_end, in_off),
        );
    }
    if (CHECKS && (!r.ok || k >= k_end)) {
        return vec4<f32>(0.0);
    }
    let ic = a_index(r, k, in_off);
    if (ic.x < 0) {
        return vec4<f32>(0.0);
    }
    var x = a_load4(u32(ic.x));
    if (has_flag(FLAG_IN_ACT)) {
        x = relu4(fma(x, act_scale4(u32(ic.y)), act_shift4(u32(ic.y))));
    }
    return x;
}

// B[k, 4 n4 .. 4 n4 + 3]; zero past K and past the padded channels.
fn load_b4(k: u32, n4: u32, k_end: u32, w_off: u32) -> vec4<f32> {
    if (CHECKS && (k >= k_end || n4 >= p.coutp / 4u)) {
        return vec4<f32>(0.0);
    }
    return w_load4(w_off + k * p.coutp + 4u * n4);
}

@compute @workgroup_size(WG_M * WG_N)
fn conv_shared(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= p.tiles) {
        return; // whole workgroup: overshoot of the 2D-folded grid
    }
    let wg = WG_M * WG_N;
    let bm = WG_M * TM;
    let bn4 = WG_N * TN4;
    let k_total = p.kh * p.kw * p.cin;
    // Batched GEMMs (Winograd) offset A, B and C by z; split K slices K by z instead.
    var z = wid.z;
    var k_begin = 0u;
    var k_end = k_total;
    if (SPLIT_K) {
        k_begin = z * p.k_chunk;
        k_end = min(k_total, k_begin + p.k_chunk);
        z = 0u;
    }
    let in_off = p.in_off + z * p.a_stride;
    let w_off = z * p.w_stride;
    let tmn = tile_coords(tile);
    let m0 = tmn.x * bm;
    let n40 = tmn.y * bn4;
    let tx = lid % WG_N;
    let ty = lid / WG_N;

    // What this invocation stages per K tile: A vec4 e = lid + s * wg is pixel e / (BK / 4),
    // k quad e % (BK / 4); B vec4 e is k e / bn4, column e % bn4. Consecutive invocations
    // load consecutive k of a pixel (contiguous channels) and consecutive columns of B.
    let na = bm * (BK / 4u) / wg;
    let nb = BK * bn4 / wg;
    var rows: array<Row, STAGE_MAX>;
    for (var s = 0u; s < na; s++) {
        rows[s] = make_row(m0 + (lid + s * wg) / (BK / 4u), in_off);
    }
    var ra: array<vec4<f32>, STAGE_MAX>;
    var rb: array<vec4<f32>, STAGE_MAX>;
    // Prefetch of the first tile.
    for (var s = 0u; s < na; s++) {
        let e = lid + s * wg;
        ra[s] = load_a4(rows[s], k_begin + 4u * (e % (BK / 4u)), k_end, in_off);
    }
    for (var s = 0u; s < nb; s++) {
        let e = lid + s * wg;
        rb[s] = load_b4(k_begin + e / bn4, n40 + e % bn4, k_end, w_off);
    }

    var acc: array<array<vec4<f32>, TN4_MAX>, TM_MAX>;
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        for (var s = 0u; s < na; s++) {
            sa[lid + s * wg] = ra[s];
        }
        for (var s = 0u; s < nb; s++) {
            sb[lid + s * wg] = rb[s];
        }
        workgroupBarrier();
        // The next tile's loads go out before this tile's math.
        let k1 = k0 + BK;
        if (k1 < k_end) {
            for (var s = 0u; s < na; s++) {
                let e = lid + s * wg;
                ra[s] = load_a4(rows[s], k1 + 4u * (e % (BK / 4u)), k_end, in_off);
            }
            for (var s = 0u; s < nb; s++) {
                let e = lid + s * wg;
                rb[s] = load_b4(k1 + e / bn4, n40 + e % bn4, k_end, w_off);
            }
        }
        for (var kq = 0u; kq < BK / 4u; kq++) {
            // B of these 4 k for each of the invocation's columns, as a matrix whose columns
            // are the 4 k rows: `w * a` is then the 4 x 4 block's product.
            var w: array<mat4x4<f32>, TN4_MAX>;
            for (var j = 0u; j < TN4; j++) {
                let c = tx + WG_N * j;
                w[j] = mat4x4<f32>(
                    sb[(4u * kq) * bn4 + c],
                    sb[(4u * kq + 1u) * bn4 + c],
                    sb[(4u * kq + 2u) * bn4 + c],
                    sb[(4u * kq + 3u) * bn4 + c],
                );
            }
            for (var i = 0u; i < TM; i++) {
                let a = sa[(ty * TM + i) * (BK / 4u) + kq];
                for (var j = 0u; j < TN4; j++) {
                    acc[i][j] += w[j] * a;
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < TM; i++) {
        let m = m0 + ty * TM + i;
        if (CHECKS && m >= p.m) {
            break;
        }
        for (var j = 0u; j < TN4; j++) {
            let c0 = 4u * (n40 + tx + WG_N * j);
            if (SPLIT_K) {
                // Raw partial sums of slice wid.z (coutp is a multiple of 4: whole vec4).
                if (c0 < p.coutp) {
                    arena_store4(p.out_off + wid.z * p.c_stride + m * p.coutp + c0, acc[i][j], false);
                }
            } else {
                store4(m, c0, acc[i][j], z * p.c_stride);
            }
        }
    }
}

// Split K's reduction: output (m, 4 channels) = the sum of the p.splits slices' partial sums at
// in_off (slice stride c_stride), with the epilogue. One invocation per (m, vec4 column).
@compute @workgroup_size(64)
fn splitk_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.y * nwg.x + wid.x) * 64u + lid;
    let cols = p.coutp / 4u;
    if (i >= p.m * cols) {
        return;
    }
    let m = i / cols;
    let c0 = 4u * (i % cols);
    var sum = vec4<f32>(0.0);
    for (var s = 0u; s < p.splits; s++) {
        sum += arena_load4(p.in_off + s * p.c_stride + m * p.coutp + c0, false);
    }
    store4(m, c0, sum, 0u);
}
