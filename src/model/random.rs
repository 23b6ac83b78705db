//! Seeded random parameters for any [`Arch`]: stand-ins for checkpoints in benchmarks, planner
//! and kernel tests, and random checkpoints written with `save_network`.
//!
//! The values are chosen to exercise what real checkpoints exercise (negative gammas,
//! non-trivial running statistics, biases exactly where the flavour has them) while keeping
//! activations in a sane range even through the 66 units of a ResNet-200.

use crate::model::arch::{Arch, Family};
use crate::model::load::skeleton::{ConvSpec, Factory, Slot, build_params};
use crate::model::params::{BatchNorm, ConvWeights, Params};

/// SplitMix64: tiny, fast, and good enough for test weights; no crate needed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 bits (every value exactly representable).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[-a, a)`.
    fn sym(&mut self, a: f32) -> f32 {
        (self.unit() * 2.0 - 1.0) * a
    }
}

struct Random {
    rng: SplitMix64,
    eps: f32,
    v1: bool,
    /// Scale of every residual branch's output: `1/sqrt(units)` keeps the variance of the
    /// residual stream growing like `(1 + 1/units)^units <= e` instead of exponentially.
    branch_scale: f32,
}

impl Factory for Random {
    fn conv(&mut self, _slot: Slot, s: &ConvSpec) -> ConvWeights {
        // He-uniform: variance 2/fan_in keeps a conv+ReLU chain at a constant scale.
        let mut a = (6.0 / (s.kh * s.kw * s.cin).max(1) as f32).sqrt();
        let mut b = 0.1;
        // v2 has no BN after the branch's last conv, so the conv itself is scaled; v1 scales
        // that BN instead (scaling the conv would be undone by the BN's division).
        if s.branch_end && !self.v1 {
            a *= self.branch_scale;
            b *= self.branch_scale;
        }
        let n = s.kh * s.kw * s.cin * s.cout;
        let weight = (0..n).map(|_| self.rng.sym(a)).collect();
        let bias = s
            .bias
            .then(|| (0..s.cout).map(|_| self.rng.sym(b)).collect());
        ConvWeights {
            kh: s.kh,
            kw: s.kw,
            cin: s.cin,
            cout: s.cout,
            weight,
            bias,
        }
    }

    fn bn(&mut self, _slot: Slot, c: usize, branch_end: bool) -> BatchNorm {
        let k = if branch_end && self.v1 {
            self.branch_scale
        } else {
            1.0
        };
        let rng = &mut self.rng;
        // |gamma| in [0.5, 1.5), one in eight negative: folding must keep the sign.
        let gamma = (0..c)
            .map(|_| {
                let g = 0.5 + rng.unit();
                k * if rng.next_u64().is_multiple_of(8) {
                    -g
                } else {
                    g
                }
            })
            .collect();
        let beta = (0..c).map(|_| k * rng.sym(0.2)).collect();
        let mean = (0..c).map(|_| rng.sym(0.3)).collect();
        let var = (0..c).map(|_| 0.5 + 1.5 * rng.unit()).collect();
        BatchNorm {
            gamma,
            beta,
            mean,
            var,
            eps: self.eps,
        }
    }
}

/// Deterministic parameters for `arch`: the same `(arch, seed)` gives bit-identical values on
/// every platform.
pub fn random_params(arch: &Arch, seed: u64) -> Params {
    let units: usize = arch.stages.iter().map(|s| s.units).sum();
    let mut f = Random {
        rng: SplitMix64(seed),
        eps: arch.rules.bn_eps,
        v1: arch.family() == Family::PostActivation,
        branch_scale: 1.0 / (units.max(1) as f32).sqrt(),
    };
    build_params(arch, &mut f)
}

/// Deterministic benchmark input in [-1, 1) (the v2 flavours' input range): `resnet bench` and
/// the burn peer comparison feed both engines exactly this.
pub fn random_input(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::{Flavour, UnitKind};

    #[test]
    fn same_seed_same_params_other_seed_other_params() {
        let arch = Arch::new(
            Flavour::SlimV2,
            UnitKind::Bottleneck,
            &[1, 2, 1, 1],
            &[4, 8, 8, 16],
            8,
            10,
        );
        let a = random_params(&arch, 7);
        assert_eq!(a, random_params(&arch, 7));
        assert_ne!(a, random_params(&arch, 8));
    }

    #[test]
    fn biases_and_bns_follow_the_flavour() {
        for f in Flavour::ALL {
            let arch = Arch::new(f, UnitKind::Bottleneck, &[2, 1], &[4, 8], 8, 5);
            let p = random_params(&arch, 1);
            let b = f.biases();
            let v1 = f.family() == Family::PostActivation;
            assert_eq!(p.stem.bias.is_some(), b.stem, "{f}");
            assert_eq!(p.stem_bn.is_some(), v1);
            assert_eq!(p.post_norm.is_some(), !v1);
            let u = &p.stages[0][0];
            assert_eq!(u.conv1.bias.is_some(), b.inner);
            assert_eq!(u.conv3.as_ref().unwrap().bias.is_some(), b.last);
            let (sc, sc_bn) = u.shortcut.as_ref().unwrap();
            assert_eq!(sc.bias.is_some(), b.shortcut);
            assert_eq!(sc_bn.is_some(), v1);
            assert!(p.classifier.bias.is_some());
            assert_eq!(u.bn1.eps, f.bn_eps());
        }
        let arch = Arch::preset("resnet50").unwrap();
        let p = random_params(&arch, 3);
        let gammas: Vec<f32> = p
            .stages
            .iter()
            .flatten()
            .flat_map(|u| u.bn1.gamma.clone())
            .collect();
        let negative = gammas.iter().filter(|&&g| g < 0.0).count();
        assert!(negative > gammas.len() / 16 && negative < gammas.len() / 4);
    }
}
