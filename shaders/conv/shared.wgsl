// Shared-memory conv variant (`conv_shared`): the classic tiled GEMM for real GPUs. A 16x16
// workgroup stages an SBM x SBK tile of A and an SBK x (4 * SBN4) tile of B in workgroup
// memory per K step; each invocation accumulates 4 pixels x one vec4 of channels.

override VEC4: bool = false;
override IS_1X1: bool = false;
override CHECKS: bool = true;

const SBM: u32 = 64u;
const SBN4: u32 = 16u;
const SBK: u32 = 16u;

var<workgroup> sa: array<f32, SBK * SBM>;        // A tile, [k][m]
var<workgroup> sb: array<vec4<f32>, SBK * SBN4>; // B tile, [k][n4]

// One GEMM row (output pixel) of the A tile that an invocation stages at every K step: its
// coordinates are decomposed once, outside the K loop (integer division is slow on GPUs).
struct Row {
    ok: bool,     // m < M (rows past M stage zeros)
    base: u32,    // 1x1 path: element index of the input row
    img_row: u32, // image * input height
    iy0: i32,     // top-left input position of the window
    ix0: i32,
}

fn make_row(m: u32, in_off: u32) -> Row {
    var r: Row;
    r.ok = m < p.m;
    let mc = min(m, p.m - 1u);
    r.base = in_off + mc * p.cin;
    let hw = p.oh * p.ow;
    let rem = mc % hw;
    r.img_row = (mc / hw) * p.h;
    r.iy0 = i32((rem / p.ow) * p.stride) - i32(p.pad);
    r.ix0 = i32((rem % p.ow) * p.stride) - i32(p.pad);
    return r;
}

// Element index of A[row, k] and its input channel, or -1 for a tap in the zero padding.
fn a_index(r: Row, k: u32, in_off: u32) -> vec2<i32> {
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
    return vec2<i32>(i32(in_off + ((r.img_row + u32(iy)) * p.w + u32(ix)) * p.cin + c), i32(c));
}

// A[row, k] with the pre-activation applied; 0 outside M x K (so partial tiles add nothing)
// and for taps in the zero padding (which pads the pre-activated map, hence after the act).
fn load_a(r: Row, k: u32, k_total: u32, in_off: u32) -> f32 {
    if (CHECKS && (!r.ok || k >= k_total)) {
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

// A[row, k .. k + 3] (cin % 4 == 0 and k % 4 == 0, so the 4 columns are 4 channels of one tap).
fn load_a4(r: Row, k: u32, k_total: u32, in_off: u32) -> vec4<f32> {
    if (CHECKS && (!r.ok || k >= k_total)) {
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
    let z = wid.z;
    let in_off = p.in_off + z * p.a_batch;
    let w_off = z * p.w_batch;
    let tmn = tile_coords(tile);
    let tm = tmn.x;
    let tn = tmn.y;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let k_total = p.kh * p.kw * p.cin;
    let coutp4 = p.coutp / 4u;
    // The A rows this invocation stages (fixed across K steps): VEC4 stages one vec4 of row
    // lid / 4 per step, the scalar path 4 scalars of rows lid / 16 + 16 r.
    var rows: array<Row, 4>;
    for (var r = 0u; r < select(4u, 1u, VEC4); r++) {
        rows[r] = make_row(tm * SBM + select(lid / SBK + 16u * r, lid / (SBK / 4u), VEC4), in_off);
    }
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k_total; k0 += SBK) {
        // Stage A: consecutive invocations read consecutive k (contiguous channels) of a pixel.
        if (VEC4) {
            let kq = lid % (SBK / 4u);
            let mm = lid / (SBK / 4u);
            let v = load_a4(rows[0], k0 + kq * 4u, k_total, in_off);
            sa[(kq * 4u) * SBM + mm] = v.x;
            sa[(kq * 4u + 1u) * SBM + mm] = v.y;
            sa[(kq * 4u + 2u) * SBM + mm] = v.z;
            sa[(kq * 4u + 3u) * SBM + mm] = v.w;
        } else {
            let kk = lid % SBK;
            for (var r = 0u; r < 4u; r++) {
                sa[kk * SBM + lid / SBK + 16u * r] = load_a(rows[r], k0 + kk, k_total, in_off);
            }
        }
        // Stage B: one vec4 per invocation; zero past K and past the padded channels.
        {
            let kk = lid / SBN4;
            let n4 = tn * SBN4 + lid % SBN4;
            let k = k0 + kk;
            var v = vec4<f32>(0.0);
            if (!CHECKS || (k < k_total && n4 < coutp4)) {
                v = w_load4(w_off + k * p.coutp + 4u * n4);
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
    let zc = z * p.c_batch;
    for (var i = 0u; i < 4u; i++) {
        let m = tm * SBM + ty * 4u + i;
        if (!CHECKS || m < p.m) {
            store4(m, 4u * (tn * SBN4 + tx), acc[i], zc);
        }
    }
}
