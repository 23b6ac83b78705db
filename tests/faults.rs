//! Faults of the GPU: a device lost in the middle of a run, a GPU error raised outside our
//! calls, and a wait past its deadline all become errors of the next call (never a panic, a
//! hang or garbage logits), and the library recovers where recovery is possible.

mod common;

use resnet_wgpu::gpu::session::{FailAction, Failpoint, Session, SessionOptions};
use resnet_wgpu::graph::{Graph, LowerOptions, lower};
use resnet_wgpu::model::arch::UnitKind;
use resnet_wgpu::model::random::{random_input, random_params};
use resnet_wgpu::model::{Arch, Flavour, Network};
use resnet_wgpu::plan::Limits;
use resnet_wgpu::{Classifier, ClassifierOptions, Error, Model};
use std::time::Duration;

const SIDE: usize = 64;

fn network() -> Network {
    let arch = Arch::new(
        Flavour::TimmV2,
        UnitKind::Bottleneck,
        &[1, 1, 1, 1],
        &[4, 8, 8, 16],
        8,
        10,
    );
    let params = random_params(&arch, 3);
    Network { arch, params }
}

fn graph(net: &Network) -> Graph {
    lower(&net.arch, &net.params, SIDE, SIDE, &LowerOptions::default()).unwrap()
}

/// A session that runs `batch` images one sub-batch at a time: one submission (and one wait)
/// per image, so that a fault can land between two of them.
fn one_image_per_submission(
    ctx: &resnet_wgpu::gpu::GpuContext,
    g: &Graph,
    batch: usize,
) -> Session {
    let one = resnet_wgpu::plan::plan(g, 1, &Limits::unlimited())
        .unwrap()
        .arena_bytes;
    let limits = Limits {
        max_binding_bytes: one + one / 2,
        ..ctx.plan_limits()
    };
    let s = Session::with_limits(ctx, g.clone(), batch, &limits).unwrap();
    assert_eq!(s.plan().batch, 1);
    s
}

/// A session of `batch` one-image submissions, its input (seeded) and the logits of an
/// undisturbed run; and a failpoint with `action` in the middle of the run: before the middle
/// step of the middle sub-batch, so that the fault lands mid-run on any adapter, fast or slow.
fn ready_to_fault(
    ctx: &resnet_wgpu::gpu::GpuContext,
    g: &Graph,
    batch: usize,
    seed: u64,
    action: FailAction,
) -> (Session, Vec<f32>, Vec<f32>) {
    let session = one_image_per_submission(ctx, g, batch);
    let x = random_input(batch * 3 * SIDE * SIDE, seed);
    let want = session.run_nchw(&x, batch).unwrap().logits;
    let steps = &session.plan().steps;
    let failpoint = Failpoint {
        sub_batch: batch / 2,
        step: steps[steps.len() / 2].name.clone(),
        action,
    };
    session.set_failpoint(failpoint).unwrap();
    (session, x, want)
}

#[test]
fn a_device_destroyed_mid_run_fails_every_later_call_and_a_new_device_works() {
    let ctx = common::gpu();
    let net = network();
    let g = graph(&net);
    let batch = 8;
    let (session, x, want) = ready_to_fault(&ctx, &g, batch, 1, FailAction::DestroyDevice);
    match session.run_nchw(&x, batch) {
        Err(Error::DeviceLost(why)) => eprintln!("mid-run: device lost ({why})"),
        Ok(_) => panic!("the run ended normally although the device was destroyed mid-run"),
        Err(e) => panic!("expected DeviceLost, got: {e}"),
    }
    // Every later call says so, on the session and on anything new built on the device.
    for _ in 0..2 {
        let e = session.run_nchw(&x[..3 * SIDE * SIDE], 1).unwrap_err();
        assert!(matches!(e, Error::DeviceLost(_)), "{e}");
        assert!(e.to_string().contains("create a new"), "{e}");
    }
    let e = Session::new(&ctx, g.clone(), 1)
        .err()
        .expect("a lost device");
    assert!(matches!(e, Error::DeviceLost(_)), "{e}");
    let model = Model::from(net);
    let e = Classifier::with_context(&model, &ctx, &options())
        .err()
        .expect("a lost device");
    assert!(matches!(e, Error::DeviceLost(_)), "{e}");

    // A fresh device: a new classifier works and gives the logits of before.
    let fresh = common::gpu();
    let classifier = Classifier::with_context(&model, &fresh, &options()).unwrap();
    let got = classifier.logits(&x, batch).unwrap();
    common::assert_close(&got, &want, 1e-5, "logits on a fresh device");
}

/// The device lost while a session is being built (its pipelines being compiled): building
/// fails with DeviceLost, not a panic or a half-built session, and a new device works.
#[test]
fn a_device_lost_while_pipelines_are_built_fails_the_build() {
    let ctx = common::gpu();
    let net = network();
    let g = graph(&net);
    let opts = SessionOptions {
        destroy_device_after_pipelines: Some(2),
        ..Default::default()
    };
    match Session::with_options(&ctx, g.clone(), 2, &opts) {
        Err(Error::DeviceLost(why)) => eprintln!("while building: device lost ({why})"),
        Ok(s) => panic!(
            "a session was built on a destroyed device ({} pipelines)",
            s.pipeline_count()
        ),
        Err(e) => panic!("expected DeviceLost, got: {e}"),
    }
    let e = Session::new(&ctx, g.clone(), 1)
        .err()
        .expect("a lost device");
    assert!(matches!(e, Error::DeviceLost(_)), "{e}");
    let fresh = common::gpu();
    let x = random_input(2 * 3 * SIDE * SIDE, 4);
    let got = Session::new(&fresh, g.clone(), 2)
        .unwrap()
        .run_nchw(&x, 2)
        .unwrap();
    let want = common::cpu_logits_and_maps(&g, &x, &[2, 3, SIDE, SIDE]).0;
    common::assert_close(&got.logits, &want, 1e-5, "logits on a fresh device");
}

fn options() -> ClassifierOptions {
    ClassifierOptions {
        max_batch: 8,
        preprocess: Some(
            Flavour::TimmV2
                .preprocess()
                .with_overrides(Some(SIDE), None, true),
        ),
        ..Default::default()
    }
}

#[test]
fn a_gpu_error_outside_our_calls_fails_the_next_call_once() {
    let ctx = common::gpu();
    let g = graph(&network());
    let session = Session::new(&ctx, g, 2).unwrap();
    let x = random_input(2 * 3 * SIDE * SIDE, 2);
    let want = session.run_nchw(&x, 2).unwrap().logits;
    // The app does something invalid on the shared device, outside any error scope: wgpu's
    // default handler would panic; ours records it.
    let _bad = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 3, // mapped at creation needs a multiple of 4
        usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: true,
    });
    let e = session.run_nchw(&x, 2).unwrap_err();
    assert!(matches!(e, Error::Gpu(_)), "{e}");
    assert!(e.to_string().contains("not trusted"), "{e}");
    // Reported once: the next call runs normally.
    let got = session.run_nchw(&x, 2).unwrap().logits;
    assert_eq!(got, want);
}

/// A pass whose wait times out (the failpoint ends its wait as a passed deadline would, with
/// the pass still in flight): a Timeout naming the setting, and the next call first waits for
/// the abandoned pass and frees its read-back, then runs normally.
#[test]
fn a_wait_past_its_deadline_is_a_timeout_and_the_session_recovers() {
    let ctx = common::gpu();
    let g = graph(&network());
    let batch = 4;
    let (session, x, want) = ready_to_fault(&ctx, &g, batch, 3, FailAction::Timeout);
    ctx.set_timeout(Duration::from_secs(7));
    let e = session.run_nchw(&x, batch).unwrap_err();
    match &e {
        Error::Timeout { seconds, .. } => assert_eq!(*seconds, 7.0, "{e}"),
        other => panic!("expected a Timeout, got: {other}"),
    }
    assert!(e.to_string().contains("RESNET_GPU_TIMEOUT"), "{e}");
    for _ in 0..2 {
        let got = session.run_nchw(&x, batch).unwrap().logits;
        assert_eq!(got, want);
    }
}

/// A GPU error reported while a pass is in flight (by the app, from another thread) fails that
/// call once; the read-back it leaves mapped is released, and the next call runs normally.
#[test]
fn an_error_reported_during_a_pass_fails_that_call_and_the_next_one_runs() {
    let ctx = common::gpu();
    let net = network();
    let g = graph(&net);
    let batch = 6;
    let action = FailAction::ReportError("an error the app saw on this device".into());
    let (session, x, want) = ready_to_fault(&ctx, &g, batch, 5, action);
    let e = session
        .run_nchw(&x, batch)
        .expect_err("the error lands in the middle of the run");
    assert!(matches!(e, Error::Gpu(_)), "{e}");
    assert!(e.to_string().contains("the app saw"), "{e}");
    for _ in 0..2 {
        let got = session.run_nchw(&x, batch).unwrap().logits;
        assert_eq!(got, want);
    }
}
