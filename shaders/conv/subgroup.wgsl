// Subgroup conv variant (`conv_subgroup`), for software rasterisers with subgroups of 8 and
// 64-bit integers (lavapipe): light to compile (a fraction of a second against ~10 s for the
// texture variant on a cold shader cache) and no staging copies.
//
// One workgroup is one SIMD vector of 8 lanes. Lanes run along M: lane l owns the BR pixels
// (tile row + 8 r + l); all lanes share 4 BN4 output channels. Per step of 4 k, the B block
// (4 rows x 4 BN4 columns) is loaded once, spread over the lanes (lane l: row l / 2, half l % 2
// of the columns), and every value reaches every lane by `subgroupShuffle`, which lavapipe
// compiles to a `vpermd` or a broadcast: about one instruction, against about ten per lane for
// any non-constant storage load (see io64.wgsl). A rows are per-lane loads of 4 channels.
// Everything else (taps, pre-activation, epilogue) is as in the other variants.

// Pixels per lane, and vec4 columns per workgroup (even).
override BR: u32 = 4u;
override BN4: u32 = 4u;
// Largest BR and BN4 (they size private arrays; the plan's `SUBGROUP_MAX_*`).
const BRMAX: u32 = 4u;
const BN4MAX: u32 = 8u;

@compute @workgroup_size(8)
fn conv_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= p.tiles) {
        return;
    }
    let z = wid.z;
    let in_off = p.in_off + z * p.a_stride;
    let w_off = z * p.w_stride;
    let tmn = tile_coords(tile);
    let n0 = tmn.y * 4u * BN4;
    let in_act = has_flag(FLAG_IN_ACT);
    // This lane's share of the B block: row lane / 2, vec4 columns (lane % 2) * BN4 / 2 + j.
    let brow = lane >> 1u;
    let half = BN4 / 2u;
    var bcol: array<u32, 4>;
    for (var j = 0u; j < half; j++) {
        bcol[j] = min(n0 + 4u * ((lane & 1u) * half + j), p.coutp - 4u);
    }
    var acc: array<vec4<f32>, BRMAX * BN4MAX>; // [row][column]
    var win: array<Window, BRMAX>; // common.wgsl's row addressing
    for (var r = 0u; r < BR; r++) {
        // Pixels past M (last tile) compute on a clamped, valid row; they are not stored.
        win[r] = window(min((tmn.x * BR + r) * 8u + lane, p.m - 1u));
    }
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            var base: array<u32, BRMAX>;
            var ok: array<bool, BRMAX>;
            for (var r = 0u; r < BR; r++) {
                // Out-of-bounds taps read pixel 0, a harmless in-bounds address, zeroed below.
                let t = tap(win[r], ky, kx);
                ok[r] = t.ok;
                base[r] = in_off + t.pixel * p.cin;
            }
            let krow = (ky * p.kw + kx) * p.cin;
            for (var c = 0u; c < p.cin; c += 4u) {
                var bt: array<vec4<f32>, 4>;
                for (var j = 0u; j < half; j++) {
                    bt[j] = w_load4(w_off + (krow + c + brow) * p.coutp + bcol[j]);
                }
                var sc = vec4<f32>(1.0);
                var sh = vec4<f32>(0.0);
                if (in_act) {
                    // One load per lane (scale for lanes 0-3, shift for 4-7), then shuffles.
                    let x = w_load(p.act + select(c, p.cinp + c, lane >= 4u) + (lane & 3u));
                    sc = vec4<f32>(
                        subgroupShuffle(x, 0u),
                        subgroupShuffle(x, 1u),
                        subgroupShuffle(x, 2u),
                        subgroupShuffle(x, 3u),
                    );
                    sh = vec4<f32>(
                        subgroupShuffle(x, 4u),
                        subgroupShuffle(x, 5u),
                        subgroupShuffle(x, 6u),
                        subgroupShuffle(x, 7u),
                    );
                }
                var a: array<vec4<f32>, BRMAX>;
                for (var r = 0u; r < BR; r++) {
                    let x = a_load4(base[r] + c);
                    let y = select(x, relu4(fma(x, sc, sh)), in_act);
                    // Zero padding pads the *pre-activated* map: zero after the act.
                    a[r] = select(vec4<f32>(0.0), y, ok[r]);
                }
                for (var kk = 0u; kk < 4u; kk++) {
                    for (var g = 0u; g < BN4; g++) {
                        let b = subgroupShuffle(bt[g % half], 2u * kk + g / half);
                        for (var r = 0u; r < BR; r++) {
                            acc[r * BN4MAX + g] = fma(vec4<f32>(a[r][kk]), b, acc[r * BN4MAX + g]);
                        }
                    }
                }
            }
        }
    }
    let zc = z * p.c_stride;
    for (var r = 0u; r < BR; r++) {
        let m = (tmn.x * BR + r) * 8u + lane;
        if (m < p.m) {
            // One call of `store4`, in a loop kept rolled by its end at cout, on
            // accumulators copied out with constant indices (see register.wgsl): the
            // unrolled call sites tripled this pipeline's first-dispatch compile on lavapipe.
            var cols: array<vec4<f32>, BN4MAX>;
            for (var g = 0u; g < BN4MAX; g++) {
                cols[g] = acc[r * BN4MAX + g];
            }
            for (var g = 0u; g < BN4; g++) {
                let c0 = n0 + 4u * g;
                if (c0 >= p.cout) {
                    break;
                }
                store4(m, c0, cols[g], zc);
            }
        }
    }
}
