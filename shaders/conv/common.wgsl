// Shared by every kernel of the convolution family (shaders/conv/*.wgsl, joined by plain
// concatenation in Rust: common.wgsl + an io file + the kernel's file): the uniform, its
// flags, the storage-precision overrides and the index helpers.
//
// A convolution is an implicit GEMM over NHWC activations:
//
//   C[M, N] = A[M, K] * B[K, N],  M = batch * OH * OW (output pixels), N = Cout,
//   K = KH * KW * Cin in (kh, kw, cin) order, so each tap's slice of an A row is a contiguous
//   run of Cin values of the NHWC input, and B is the HWIO weight matrix.
//
// Fused around it: the v2 pre-activation `relu(x * scale + shift)` on loaded input elements
// (in-bounds ones only: the zero padding pads the pre-activated map), and in the epilogue bias,
// residual (stride 1 or 2), ReLU and a split of the output channels into a second tensor.
//
// Offsets, lengths and indices count ELEMENTS of the tensor they refer to; the io file turns
// them into storage words (an f32 element is one 32-bit word, an f16 element half of one).

struct Params {
    m: u32,          // GEMM rows: batch * oh * ow
    cout: u32,       // GEMM columns
    cin: u32,
    coutp: u32,      // row length of B in `consts`: cout padded to a multiple of 4
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
    bias: u32,       // element index of the bias in `consts`
    act: u32,        // element index of the in_act scale; the shift follows at act + cinp
    cinp: u32,       // cin padded to a multiple of 4
    tiles_n: u32,    // workgroup tiles along N
    tiles: u32,      // workgroup tiles in all (the grid may be folded into 2D and overshoot)
    w_texel: u32,    // texture variant: texel index of this op's constants in `weights_tex`
    // Batched GEMMs (Winograd's a^2 products): workgroup z computes GEMM z, whose A, C and B
    // start these many elements after GEMM 0's (0 for an ordinary conv, dispatched with z = 1).
    a_stride: u32,
    c_stride: u32,
    w_stride: u32,
    tiles_y: u32,    // Winograd transforms: output tiles per column and per row of a map
    tiles_x: u32,
    alpha: u32,      // Winograd transforms: the tile's side, 4 (F(2,3)) or 6 (F(4,3))
    k_chunk: u32,    // split K: the K range of one slice (workgroup z)
    splits: u32,     // split K: slices
    _pad: u32,
}

const FLAG_IN_ACT: u32 = 1u;
const FLAG_RESIDUAL: u32 = 2u;
const FLAG_RELU: u32 = 4u;
const FLAG_SPLIT_RELU: u32 = 8u;
// Raster order of the workgroup tiles: M fastest when the weights are larger than the input.
const FLAG_M_FASTEST: u32 = 16u;
// No bias in the epilogue (a Winograd GEMM: the output transform adds it).
const FLAG_NO_BIAS: u32 = 32u;
// The output (and split) tensor, and the residual tensor, are stored as f16.
const FLAG_OUT_F16: u32 = 64u;
const FLAG_RES_F16: u32 = 128u;
// Some vec4 of output channels straddles `at` or ends past `cout` (one of them is not a
// multiple of 4): the epilogue's element-by-element path.
const FLAG_RAGGED: u32 = 256u;

// The flags that any launch of this pipeline sets: the plan's union over its launches. A flag
// outside it is false when the driver compiles the pipeline, so its code compiles out (a
// software driver compiles at the first dispatch, and the epilogue's unused residual, split
// and f16 paths were a large share of that time). The default keeps every path.
override FLAGS: u32 = 0xffffffffu;

// Storage precision of the A operand (the conv's input) and of the op's constants (weights,
// bias, pre-activation): overrides, because they decide the loads of the hot loop.
override A_F16: bool = false;
override W_F16: bool = false;

@group(0) @binding(0) var<uniform> p: Params;

fn has_flag(f: u32) -> bool {
    return (p.flags & (f & FLAGS)) != 0u;
}

// ReLU that keeps NaN, as the frameworks' relu does: `max(x, 0.0)` may return 0 for a NaN
// (LLVM's maxnum does), which would turn a broken value into a confident, finite answer.
fn relu(x: f32) -> f32 {
    return select(x, 0.0, x < 0.0);
}

fn relu4(x: vec4<f32>) -> vec4<f32> {
    return select(x, vec4<f32>(0.0), x < vec4<f32>(0.0));
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

// Row addressing, written once for every GEMM kernel. GEMM row m is output pixel
// (image, oy, ox) = (m / (oh * ow), (m % (oh * ow)) / ow, m % ow).
fn out_pixel(m: u32) -> vec3<u32> {
    let hw = p.oh * p.ow;
    let rem = m % hw;
    return vec3<u32>(m / hw, rem / p.ow, rem % p.ow);
}

// The input window of an output pixel, decomposed once per row (integer division is slow on
// GPUs): its image's first input row and the input position of tap (0, 0), negative in the
// top and left padding.
struct Window {
    img_row: u32, // image * input height
    iy0: i32,
    ix0: i32,
}

fn window(m: u32) -> Window {
    let o = out_pixel(m);
    return Window(o.x * p.h, i32(o.y * p.stride) - i32(p.pad), i32(o.z * p.stride) - i32(p.pad));
}

// Tap (ky, kx) of a window: the input pixel it reads, as a pixel index into the input tensor
// (image * h * w + iy * w + ix; 0 in the padding), and whether it lies inside the input (a
// tap in the zero padding reads nothing and contributes zero).
struct Tap {
    pixel: u32,
    ok: bool,
}

fn tap(w: Window, ky: u32, kx: u32) -> Tap {
    let iy = w.iy0 + i32(ky);
    let ix = w.ix0 + i32(kx);
    let ok = iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w);
    return Tap(select(0u, (w.img_row + u32(iy)) * p.w + u32(ix), ok), ok);
}

// The residual's pixel for output pixel `m`. The residual may be the block input at twice the
// resolution (subsampled identity shortcut x[:, ::2, ::2]), so it is indexed by its own shape.
fn residual_pixel(m: u32) -> u32 {
    let o = out_pixel(m);
    return (o.x * p.res_h + o.y * p.res_stride) * p.res_w + o.z * p.res_stride;
}

// Constants of the op through the io file's w_load / w_load4 (consts as vec4<u32> or u64 words).
fn act_scale(c: u32) -> f32 {
    return w_load(p.act + c);
}

fn act_shift(c: u32) -> f32 {
    return w_load(p.act + p.cinp + c);
}

fn act_scale4(c: u32) -> vec4<f32> {
    return w_load4(p.act + c);
}

fn act_shift4(c: u32) -> vec4<f32> {
    return w_load4(p.act + p.cinp + c);
}

// The bias of channels c0 .. c0 + 3 (zero for a Winograd GEMM, whose transform adds it).
fn bias4(c0: u32) -> vec4<f32> {
    if (has_flag(FLAG_NO_BIAS)) {
        return vec4<f32>(0.0);
    }
    return w_load4(p.bias + c0);
}
