//! Plan, then build: the [`Session`] constructors that plan for a device. They read the
//! device's limits and kernel profile, make the plan ([`plan::plan_with`]) and hand it to
//! [`Session::from_plan`], which only creates what the plan lists. They live here, above
//! `gpu`, so that nothing under `src/gpu` makes a planning decision.

use crate::error::Result;
use crate::gpu::session::{Session, SessionOptions};
use crate::gpu::{GpuContext, kernels};
use crate::graph::Graph;
use crate::plan::{self, DeviceProfile, Plan, PlanOptions};

/// The profile a session on `ctx` plans for: `profile` if given, otherwise the adapter's own
/// with the environment's overrides ([`plan::device::resolve_profile`]). Creates nothing on
/// the device.
pub fn resolve_profile(ctx: &GpuContext, profile: Option<DeviceProfile>) -> Result<DeviceProfile> {
    plan::device::resolve_profile(kernels::adapter_profile(&ctx.device), profile)
}

/// The plan a session on `ctx` with `opts` runs for `batch` images of `graph`.
pub fn plan_for_session(
    ctx: &GpuContext,
    graph: &Graph,
    batch: usize,
    opts: &SessionOptions,
) -> Result<Plan> {
    // `plan_with` refuses an empty batch itself.
    let limits = opts.limits.unwrap_or_else(|| ctx.plan_limits());
    let plan_opts = PlanOptions {
        precision: opts.precision,
        device: resolve_profile(ctx, opts.profile)?,
        tuning: opts.tuning.clone(),
        batch_sizes: opts.batch_sizes.clone(),
    };
    let plan = plan::plan_with(graph, batch, &limits, &plan_opts)?;
    if plan.batch < batch {
        log::info!(
            "batch {batch} exceeds the device's buffer limits; running it as {} sub-batches of {}",
            batch.div_ceil(plan.batch),
            plan.batch
        );
    }
    Ok(plan)
}

impl Session {
    /// Plans `graph` for `batch` images (split into sub-batches if the device's limits demand
    /// it), allocates and fills every buffer and records every dispatch.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(ctx: &GpuContext, graph: Graph, batch: usize) -> Result<Session> {
        Self::with_options(ctx, graph, batch, &SessionOptions::default())
    }

    /// As [`Session::new`], planning for `limits` instead of the device's own.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_limits(
        ctx: &GpuContext,
        graph: Graph,
        batch: usize,
        limits: &plan::Limits,
    ) -> Result<Session> {
        let opts = SessionOptions {
            limits: Some(*limits),
            ..Default::default()
        };
        Self::with_options(ctx, graph, batch, &opts)
    }

    /// As [`Session::new`], with a precision, limits or a device profile to plan for.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_options(
        ctx: &GpuContext,
        graph: Graph,
        batch: usize,
        opts: &SessionOptions,
    ) -> Result<Session> {
        pollster::block_on(Self::with_options_async(ctx, graph, batch, opts))
    }

    /// As [`Session::with_options`], for async callers (the only form in the browser).
    pub async fn with_options_async(
        ctx: &GpuContext,
        graph: Graph,
        batch: usize,
        opts: &SessionOptions,
    ) -> Result<Session> {
        // `from_plan_async` checks the device before it creates anything.
        let plan = plan_for_session(ctx, &graph, batch, opts)?;
        Session::from_plan_async(ctx, graph, plan, opts.destroy_device_after_pipelines).await
    }
}
