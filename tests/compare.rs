//! The shared comparison helpers (`tests/common`) must fail on what would fool a naive
//! `fold(0.0, f32::max)`: NaN, infinities and length mismatches.

mod common;

use common::{abs_err, assert_close, rel_err};

#[test]
fn close_values_pass_with_their_error() {
    let e = rel_err(&[1.0, 2.0, -3.001], &[1.0, 2.0, -3.0]).unwrap();
    assert!((e - 0.001 / 3.0).abs() < 1e-6, "{e}");
    // The scale is max(1, max |want|): small references compare absolutely.
    let e = rel_err(&[0.01], &[0.0]).unwrap();
    assert!((e - 0.01).abs() < 1e-9, "{e}");
    assert!((abs_err(&[2.5], &[2.0]).unwrap() - 0.5).abs() < 1e-12);
    assert_close(&[1.0, 2.0], &[1.0, 2.0], 0.0, "identical");
}

#[test]
fn nan_anywhere_fails() {
    let want = [1.0, 2.0, 3.0];
    let err = rel_err(&[1.0, f32::NAN, 3.0], &want).unwrap_err();
    assert!(err.contains("NaN") && err.contains("index 1"), "{err}");
    assert!(rel_err(&[f32::NAN; 3], &want).is_err(), "all-NaN output");
    assert!(
        rel_err(&want, &[1.0, 2.0, f32::NAN]).is_err(),
        "NaN reference"
    );
    assert!(
        abs_err(&[f32::NAN], &[f32::NAN]).is_err(),
        "NaN equals nothing"
    );
}

#[test]
fn infinities_fail() {
    assert!(rel_err(&[f32::INFINITY], &[1.0]).is_err());
    assert!(rel_err(&[1.0], &[f32::NEG_INFINITY]).is_err());
    assert!(rel_err(&[f32::INFINITY], &[f32::INFINITY]).is_err());
}

#[test]
fn length_mismatches_and_empty_inputs_fail() {
    let err = rel_err(&[1.0, 2.0], &[1.0]).unwrap_err();
    assert!(err.contains("length"), "{err}");
    assert!(rel_err(&[], &[1.0]).is_err());
    assert!(
        rel_err(&[], &[]).is_err(),
        "an empty comparison proves nothing"
    );
}

#[test]
#[should_panic(expected = "NaN")]
fn assert_close_panics_on_nan() {
    assert_close(&[f32::NAN, f32::NAN], &[0.0, 0.0], 1.0, "all NaN");
}

#[test]
#[should_panic(expected = "exceeds")]
fn assert_close_panics_beyond_the_tolerance() {
    assert_close(&[1.1], &[1.0], 0.05, "ten percent off");
}
