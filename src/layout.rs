//! NCHW <-> NHWC. The frameworks hand us NCHW; the kernels want channels-last so that a conv's
//! reduction dimension (kh, kw, cin) reads contiguous memory.

/// `[n, c, h, w]` -> `[n, h, w, c]`.
pub fn nchw_to_nhwc(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    assert_eq!(x.len(), n * c * h * w, "nchw_to_nhwc: length mismatch");
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    out[((b * h + y) * w + xx) * c + ch] = x[((b * c + ch) * h + y) * w + xx];
                }
            }
        }
    }
    out
}

/// `[n, h, w, c]` -> `[n, c, h, w]`.
pub fn nhwc_to_nchw(x: &[f32], n: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    assert_eq!(x.len(), n * c * h * w, "nhwc_to_nchw: length mismatch");
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for y in 0..h {
            for xx in 0..w {
                for ch in 0..c {
                    out[((b * c + ch) * h + y) * w + xx] = x[((b * h + y) * w + xx) * c + ch];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let x: Vec<f32> = (0..2 * 3 * 4 * 5).map(|i| i as f32).collect();
        let nhwc = nchw_to_nhwc(&x, 2, 3, 4, 5);
        assert_eq!(nhwc[1], x[4 * 5]); // (n0, y0, x0, c1)
        assert_eq!(nhwc_to_nchw(&nhwc, 2, 4, 5, 3), x);
    }
}
