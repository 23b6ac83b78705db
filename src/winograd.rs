//! Winograd minimal filtering for 3x3, stride-1, pad-1 convolutions (Lavin & Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2015): `F(m x m, 3 x 3)` computes an `m x m`
//! output tile from an `a x a` input tile (`a = m + 2`) with `a^2` multiplies per input and
//! output channel pair instead of `9 m^2`:
//!
//! `Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A`
//!
//! * `U = G g G^T` (`a x a`), the filter transform: done once per layer, from the BN-folded
//!   weights, when a session is built;
//! * `V = B^T d B` (`a x a`), the input transform of each tile `d` of the (pre-activated,
//!   zero-padded) input;
//! * `M[ξν] = Σ_c V[ξν][tile][c] U[ξν][c][k]`: `a^2` independent GEMMs of
//!   `tiles x cin x cout` (where the multiplies are saved);
//! * `Y = A^T M A`, the output transform, followed by the usual epilogue (bias, residual, ReLU).
//!
//! Two sizes: [`Tile::F2`] (F(2x2,3x3): 16 multiplies per 4 outputs instead of 36) and
//! [`Tile::F4`] (F(4x4,3x3): 36 per 16 instead of 144). The matrices are the standard ones with
//! interpolation points {0, ±1, (±2 for F4), ∞}; F4's larger entries cost about one decimal
//! digit of f32 precision, which is why the planner takes it only on large maps.
//!
//! Everything here is exact f64 arithmetic over plain slices: the CPU reference of the
//! algorithm (tested against the direct convolution) and the filter transform the GPU uses.

/// Winograd output tile size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tile {
    /// F(2x2, 3x3): 4x4 input tiles.
    F2,
    /// F(4x4, 3x3): 6x6 input tiles.
    F4,
}

impl Tile {
    /// Output tile side `m`.
    pub fn m(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F4 => 4,
        }
    }

    /// Input tile side `a = m + 2`.
    pub fn alpha(self) -> usize {
        self.m() + 2
    }

    /// `a^2`: the number of GEMMs (and the transformed tile's size).
    pub fn points(self) -> usize {
        self.alpha() * self.alpha()
    }

    /// `F(2,3)` or `F(4,3)`.
    pub fn name(self) -> &'static str {
        match self {
            Tile::F2 => "F(2,3)",
            Tile::F4 => "F(4,3)",
        }
    }

    /// `B^T`, `a x a`, row-major.
    pub fn bt(self) -> &'static [f64] {
        match self {
            Tile::F2 => &BT2,
            Tile::F4 => &BT4,
        }
    }

    /// `G`, `a x 3`, row-major.
    pub fn g(self) -> &'static [f64] {
        match self {
            Tile::F2 => &G2,
            Tile::F4 => &G4,
        }
    }

    /// `A^T`, `m x a`, row-major.
    pub fn at(self) -> &'static [f64] {
        match self {
            Tile::F2 => &AT2,
            Tile::F4 => &AT4,
        }
    }

    /// Tiles along a side of `n` outputs.
    pub fn tiles(self, n: usize) -> usize {
        n.div_ceil(self.m())
    }
}

#[rustfmt::skip]
const BT2: [f64; 16] = [
    1.0,  0.0, -1.0,  0.0,
    0.0,  1.0,  1.0,  0.0,
    0.0, -1.0,  1.0,  0.0,
    0.0,  1.0,  0.0, -1.0,
];
#[rustfmt::skip]
const G2: [f64; 12] = [
    1.0,  0.0, 0.0,
    0.5,  0.5, 0.5,
    0.5, -0.5, 0.5,
    0.0,  0.0, 1.0,
];
#[rustfmt::skip]
const AT2: [f64; 8] = [
    1.0, 1.0,  1.0,  0.0,
    0.0, 1.0, -1.0, -1.0,
];

#[rustfmt::skip]
const BT4: [f64; 36] = [
    4.0,  0.0, -5.0,  0.0, 1.0, 0.0,
    0.0, -4.0, -4.0,  1.0, 1.0, 0.0,
    0.0,  4.0, -4.0, -1.0, 1.0, 0.0,
    0.0, -2.0, -1.0,  2.0, 1.0, 0.0,
    0.0,  2.0, -1.0, -2.0, 1.0, 0.0,
    0.0,  4.0,  0.0, -5.0, 0.0, 1.0,
];
#[rustfmt::skip]
const G4: [f64; 18] = [
     1.0 / 4.0,         0.0,        0.0,
    -1.0 / 6.0,  -1.0 / 6.0, -1.0 / 6.0,
    -1.0 / 6.0,   1.0 / 6.0, -1.0 / 6.0,
     1.0 / 24.0,  1.0 / 12.0, 1.0 / 6.0,
     1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0,
     0.0,         0.0,        1.0,
];
#[rustfmt::skip]
const AT4: [f64; 24] = [
    1.0, 1.0,  1.0, 1.0,  1.0, 0.0,
    0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
    0.0, 1.0,  1.0, 4.0,  4.0, 0.0,
    0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
];

/// `X^T ... X` helpers: `out = L · d · R^T` with `L` `p x q`, `d` `q x q`, `R` `p x q`.
fn sandwich(l: &[f64], d: &[f64], p: usize, q: usize) -> Vec<f64> {
    let mut tmp = vec![0.0; p * q]; // L · d
    for i in 0..p {
        for j in 0..q {
            tmp[i * q + j] = (0..q).map(|k| l[i * q + k] * d[k * q + j]).sum();
        }
    }
    let mut out = vec![0.0; p * p]; // (L · d) · L^T
    for i in 0..p {
        for j in 0..p {
            out[i * p + j] = (0..q).map(|k| tmp[i * q + k] * l[j * q + k]).sum();
        }
    }
    out
}

/// `G g G^T` of one 3x3 filter `g` (row-major), `a x a`.
pub fn filter_tile(tile: Tile, g: &[f64; 9]) -> Vec<f64> {
    let (a, gm) = (tile.alpha(), tile.g());
    let mut tmp = vec![0.0; a * 3]; // G · g
    for i in 0..a {
        for j in 0..3 {
            tmp[i * 3 + j] = (0..3).map(|k| gm[i * 3 + k] * g[k * 3 + j]).sum();
        }
    }
    let mut out = vec![0.0; a * a]; // (G g) · G^T
    for i in 0..a {
        for j in 0..a {
            out[i * a + j] = (0..3).map(|k| tmp[i * 3 + k] * gm[j * 3 + k]).sum();
        }
    }
    out
}

/// `B^T d B` of one `a x a` input tile.
pub fn input_tile(tile: Tile, d: &[f64]) -> Vec<f64> {
    sandwich(tile.bt(), d, tile.alpha(), tile.alpha())
}

/// `A^T m A` of one `a x a` product tile: the `m x m` outputs.
pub fn output_tile(tile: Tile, m: &[f64]) -> Vec<f64> {
    sandwich(tile.at(), m, tile.m(), tile.alpha())
}

/// The filter transform of a whole HWIO `[3][3][cin][cout]` weight: `[a^2][cin][cout]`
/// (point-major: point `ξν` is a `cin x cout` GEMM matrix), computed in f64.
pub fn transform_filters(tile: Tile, weight: &[f32], cin: usize, cout: usize) -> Vec<f64> {
    assert_eq!(weight.len(), 9 * cin * cout, "a 3x3 HWIO weight");
    let points = tile.points();
    let mut u = vec![0.0; points * cin * cout];
    for c in 0..cin {
        for k in 0..cout {
            let g: [f64; 9] = std::array::from_fn(|t| f64::from(weight[(t * cin + c) * cout + k]));
            for (p, v) in filter_tile(tile, &g).into_iter().enumerate() {
                u[(p * cin + c) * cout + k] = v;
            }
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1-D identity behind the matrices: for every input d and filter g, `A^T[(Gg)⊙(B^T d)]`
    /// is the valid correlation of d with g. Checked in 2-D on random tiles against the direct
    /// sum, for both sizes.
    #[test]
    fn tiles_compute_the_correlation_exactly() {
        let mut s = 0x1234_5678u64;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for tile in [Tile::F2, Tile::F4] {
            let (a, m) = (tile.alpha(), tile.m());
            for _ in 0..20 {
                let d: Vec<f64> = (0..a * a).map(|_| rnd()).collect();
                let g: [f64; 9] = std::array::from_fn(|_| rnd());
                let u = filter_tile(tile, &g);
                let v = input_tile(tile, &d);
                let prod: Vec<f64> = u.iter().zip(&v).map(|(x, y)| x * y).collect();
                let y = output_tile(tile, &prod);
                for oy in 0..m {
                    for ox in 0..m {
                        let want: f64 = (0..3)
                            .flat_map(|ky| (0..3).map(move |kx| (ky, kx)))
                            .map(|(ky, kx)| d[(oy + ky) * a + ox + kx] * g[ky * 3 + kx])
                            .sum();
                        let got = y[oy * m + ox];
                        assert!(
                            (got - want).abs() < 1e-12,
                            "{tile:?} ({oy},{ox}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sizes() {
        assert_eq!((Tile::F2.alpha(), Tile::F2.points()), (4, 16));
        assert_eq!((Tile::F4.alpha(), Tile::F4.points()), (6, 36));
        assert_eq!(Tile::F4.tiles(14), 4);
        assert_eq!(Tile::F2.tiles(7), 4);
        assert_eq!(Tile::F4.tiles(56), 14);
    }
}
