// Register-only conv variant (`conv_register`): no workgroup memory. All invocations of a
// workgroup share one tile of output channels, so every weight load has a workgroup-uniform
// address, and there is no barrier (which lavapipe implements with coroutines). Each
// invocation accumulates RTM pixels x RTN4 vec4 columns in registers: what small GEMMs get
// (the classifier at small batches, few-workgroup layers on GPUs).

// Input channels are a multiple of 4: read activations 4 channels at a time and multiply by 4
// weight rows per step (fewer loop iterations, vec4 FMAs).
override VEC4: bool = false;
// 1x1, stride 1, pad 0: A is the input tensor itself (row m at m * cin), so skip all the
// im2col index math and padding checks.
override IS_1X1: bool = false;
// Bounds checks for partial tiles. The plan sets it false when the tiles divide M and N and
// cout is a multiple of a tile's channels, which compiles them out.
override CHECKS: bool = true;
// Invocations per workgroup (one output pixel row of RTM pixels each).
override RWG: u32 = 32u;
// Pixels and vec4 output columns per invocation. From a sweep on lavapipe (2 cores, AVX2):
// 1 pixel x 8 channels beat every larger register tile (the accumulators spill). They size
// private arrays, so they are `const` (the plan's `ConvConfig` carries the same numbers and a
// test reads these from the parsed module).
const RTM: u32 = 1u;
const RTN4: u32 = 2u;

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
    let z = wid.z;
    let in_off = p.in_off + z * p.a_stride;
    let w_off = z * p.w_stride;
    let tmn = tile_coords(tile);
    let tm = tmn.x;
    let tn = tmn.y;
    // Consecutive pixels per invocation, so the invocations past M form whole trailing SIMD
    // groups that return here instead of computing masked-off work.
    let m0 = (tm * RWG + lid) * RTM;
    if (CHECKS && m0 >= p.m) {
        return;
    }
    let coutp4 = p.coutp / 4u;
    // This tile's weight columns, clamped so a partial last tile re-reads the last column
    // instead of running past the row (those results are never stored).
    var col: array<u32, RTN4>;
    for (var j = 0u; j < RTN4; j++) {
        col[j] = 4u * select(tn * RTN4 + j, min(tn * RTN4 + j, coutp4 - 1u), CHECKS);
    }
    let in_act = has_flag(FLAG_IN_ACT);

    var acc: array<vec4<f32>, RTM * RTN4>;
    var base: array<u32, RTM>;   // element index of the current tap's input pixel
    var valid: array<bool, RTM>; // whether that pixel is inside the input (else zero padding)
    var win: array<Window, RTM>; // common.wgsl's row addressing
    for (var i = 0u; i < RTM; i++) {
        // Pixels past M (last tile) compute on a clamped, valid row; they are not stored.
        let m = select(m0 + i, min(m0 + i, p.m - 1u), CHECKS);
        valid[i] = true;
        if (IS_1X1) {
            base[i] = in_off + m * p.cin;
        } else {
            win[i] = window(m);
        }
    }
    let taps_y = select(p.kh, 1u, IS_1X1);
    let taps_x = select(p.kw, 1u, IS_1X1);
    for (var ky = 0u; ky < taps_y; ky++) {
        for (var kx = 0u; kx < taps_x; kx++) {
            if (!IS_1X1) {
                for (var i = 0u; i < RTM; i++) {
                    // Out-of-bounds taps read pixel 0, a harmless in-bounds address, and
                    // are zeroed after the pre-activation below.
                    let t = tap(win[i], ky, kx);
                    valid[i] = t.ok;
                    base[i] = in_off + t.pixel * p.cin;
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
                    let wr = w_off + (krow + c) * p.coutp;
                    for (var i = 0u; i < RTM; i++) {
                        var x = a_load4(base[i] + c);
                        if (in_act) {
                            x = relu4(fma(x, sc, sh));
                        }
                        // Zero padding pads the *pre-activated* map: zero after the act.
                        x = select(vec4<f32>(0.0), x, valid[i]);
                        for (var j = 0u; j < RTN4; j++) {
                            let w0 = w_load4(wr + col[j]);
                            let w1 = w_load4(wr + p.coutp + col[j]);
                            let w2 = w_load4(wr + 2u * p.coutp + col[j]);
                            let w3 = w_load4(wr + 3u * p.coutp + col[j]);
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
                    let wr = w_off + (krow + c) * p.coutp;
                    for (var i = 0u; i < RTM; i++) {
                        var x = a_load(base[i] + c);
                        if (in_act) {
                            x = relu(fma(x, sc, sh));
                        }
                        x = select(0.0, x, valid[i]);
                        for (var j = 0u; j < RTN4; j++) {
                            acc[i * RTN4 + j] = fma(vec4<f32>(x), w_load4(wr + col[j]), acc[i * RTN4 + j]);
                        }
                    }
                }
            }
        }
    }
    // The stores: one call of `store4`, in a loop that stays rolled (it ends at cout, so its
    // trip count is not a constant). Each call site inlines the whole epilogue, which a
    // software rasteriser expands into long per-lane sequences (the first dispatch's compile
    // on lavapipe: ~0.35 s less than 2 unrolled sites). The accumulators are copied out with
    // constant indices first, so they stay in registers.
    let zc = z * p.c_stride;
    for (var i = 0u; i < RTM; i++) {
        let m = m0 + i;
        if (!CHECKS || m < p.m) {
            var cols: array<vec4<f32>, RTN4>;
            for (var j = 0u; j < RTN4; j++) {
                cols[j] = acc[i * RTN4 + j];
            }
            for (var j = 0u; j < RTN4; j++) {
                let c0 = 4u * (tn * RTN4 + j);
                if (c0 >= p.cout) {
                    break;
                }
                store4(m, c0, cols[j], zc);
            }
        }
    }
}
