//! Picking an adapter and opening a device with the adapter's own limits, and watching it:
//! wgpu reports a lost device and errors outside any error scope through callbacks (its default
//! handler panics); [`GpuContext`] records them so that the next call of a session returns
//! [`Error::DeviceLost`] / [`Error::Gpu`] instead, and every wait on the GPU has a deadline.
//!
//! Opening a device and waiting for the GPU are async at heart ([`GpuContext::new_async`],
//! [`GpuContext::wait_async`]); natively the blocking forms run the same code under
//! `pollster`. In the browser (wasm32, WebGPU) only the async forms exist.

#[cfg(target_arch = "wasm32")]
use super::callback;
use super::callback::Callback;
use super::lock;
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Environment variable: the deadline in seconds of every wait on the GPU (default
/// [`DEFAULT_TIMEOUT`]).
pub const TIMEOUT_ENV: &str = "RESNET_GPU_TIMEOUT";

/// How long a wait on the GPU (one submission: a forward pass of one sub-batch, a read-back)
/// may take before it is reported as a [`Error::Timeout`]: generous, because a software adapter
/// takes tens of seconds for a large batch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A [`TIMEOUT_ENV`] value: a positive, finite number of seconds (surrounding spaces allowed);
/// `None` for anything else (the caller warns and keeps [`DEFAULT_TIMEOUT`]).
fn parse_timeout(v: &str) -> Option<Duration> {
    let seconds: f64 = v.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
}

/// A wgpu backend the user can pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Vulkan (Linux, Windows, Android).
    Vulkan,
    /// Metal (macOS, iOS).
    Metal,
    /// DirectX 12 (Windows).
    Dx12,
    /// OpenGL / OpenGL ES.
    Gl,
}

impl Backend {
    fn backends(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

impl FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(Backend::Vulkan),
            "metal" => Ok(Backend::Metal),
            "dx12" | "d3d12" => Ok(Backend::Dx12),
            "gl" | "gles" | "opengl" => Ok(Backend::Gl),
            _ => Err(Error::Input(format!(
                "unknown backend `{s}`: use vulkan, metal, dx12 or gl"
            ))),
        }
    }
}

/// How to choose the adapter.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    /// Only this backend. Default: Vulkan/Metal/DX12, and GL only if none of those has an adapter
    /// (GL compute is far slower).
    pub backend: Option<Backend>,
    /// An index into [`list_adapters`] or a case-insensitive substring of the adapter name.
    pub adapter: Option<String>,
}

/// Adapter identity as printed in logs and benchmark reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    /// The adapter's name.
    pub name: String,
    /// The wgpu backend, e.g. `Vulkan`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `Cpu`, …
    pub device_type: String,
    /// The driver's name.
    pub driver: String,
    /// The driver's version information.
    pub driver_info: String,
}

impl From<&wgpu::AdapterInfo> for AdapterSummary {
    fn from(i: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend),
            device_type: format!("{:?}", i.device_type),
            driver: i.driver.clone(),
            driver_info: i.driver_info.clone(),
        }
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {} {})",
            self.name, self.backend, self.device_type, self.driver, self.driver_info
        )
    }
}

/// An open device and what we know about it.
#[derive(Clone, Debug)]
pub struct GpuContext {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter the device was opened on.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was opened with (the adapter's own, not wgpu's defaults).
    pub limits: wgpu::Limits,
    /// The features the device was opened with.
    pub features: wgpu::Features,
    /// Shared by every clone: what the device's callbacks reported, and the wait deadline.
    watch: Arc<Watch>,
}

/// What wgpu's device callbacks reported, and the deadline of waits.
#[derive(Debug)]
struct Watch {
    /// Set once by the device-lost callback; a lost device stays lost.
    lost: Mutex<Option<String>>,
    /// The latest error no error scope captured (taken by the next [`GpuContext::check`]).
    uncaptured: Mutex<Option<String>>,
    timeout_ns: AtomicU64,
}

impl Watch {
    /// Installs the device-lost callback and the uncaptured-error handler on `device`.
    fn install(device: &wgpu::Device) -> Arc<Watch> {
        let timeout = std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|v| {
                let d = parse_timeout(&v);
                if d.is_none() {
                    log::warn!("ignoring {TIMEOUT_ENV}={v}: expected a positive number of seconds");
                }
                d
            })
            .unwrap_or(DEFAULT_TIMEOUT);
        let watch = Arc::new(Watch {
            lost: Mutex::new(None),
            uncaptured: Mutex::new(None),
            timeout_ns: AtomicU64::new(nanos(timeout)),
        });
        // Weak: the device owns the callbacks, and the context (owning the watch) owns the
        // device; no cycle, and a report after the context is gone is simply dropped.
        let w = Arc::downgrade(&watch);
        device.set_device_lost_callback(move |reason, message| {
            if let Some(w) = w.upgrade() {
                let why = match reason {
                    wgpu::DeviceLostReason::Destroyed => "destroyed".to_string(),
                    wgpu::DeviceLostReason::Unknown => "driver reset or failure".to_string(),
                };
                let text = if message.is_empty() {
                    why
                } else {
                    format!("{why}: {message}")
                };
                log::error!("GPU device lost: {text}");
                lock(&w.lost).get_or_insert(text);
            }
        });
        let w = Arc::downgrade(&watch);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("GPU error: {e}");
            if let Some(w) = w.upgrade() {
                *lock(&w.uncaptured) = Some(e.to_string());
            }
        }));
        watch
    }
}

/// Whole nanoseconds, saturating (a deadline of centuries is as good as none).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu finds on the given backends (all of them when `None`).
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters(backend: Option<Backend>) -> Vec<wgpu::Adapter> {
    pollster::block_on(list_adapters_async(backend))
}

/// As [`list_adapters`], for async callers (in the browser: the one WebGPU adapter, if any).
pub async fn list_adapters_async(backend: Option<Backend>) -> Vec<wgpu::Adapter> {
    let backends = backend.map_or(wgpu::Backends::all(), Backend::backends);
    instance(backends).enumerate_adapters(backends).await
}

fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

async fn choose_adapter(choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    let mut adapters = match choice.backend {
        Some(b) => list_adapters_async(Some(b)).await,
        None => {
            // PRIMARY is the browser's WebGPU on wasm32.
            let primary = instance(wgpu::Backends::PRIMARY)
                .enumerate_adapters(wgpu::Backends::PRIMARY)
                .await;
            if primary.is_empty() && cfg!(not(target_arch = "wasm32")) {
                log::warn!("no Vulkan/Metal/DX12 adapter; falling back to GL (much slower)");
                list_adapters_async(Some(Backend::Gl)).await
            } else {
                primary
            }
        }
    };
    let scope = choice
        .backend
        .map_or(String::new(), |b| format!(" on backend {b:?}"));
    if adapters.is_empty() {
        return Err(Error::NoAdapter(scope));
    }
    if let Some(want) = &choice.adapter {
        let names: Vec<String> = adapters
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{i}: {}", a.get_info().name))
            .collect();
        let pick = match want.parse::<usize>() {
            Ok(i) if i < adapters.len() => Some(i),
            _ => adapters.iter().position(|a| {
                a.get_info()
                    .name
                    .to_lowercase()
                    .contains(&want.to_lowercase())
            }),
        };
        return match pick {
            Some(i) => Ok(adapters.swap_remove(i)),
            None => Err(Error::NoAdapter(format!(
                " matching `{want}`{scope} (found: {})",
                names.join("; ")
            ))),
        };
    }
    adapters.sort_by_key(|a| preference(a.get_info().device_type));
    Ok(adapters.swap_remove(0))
}

impl GpuContext {
    /// Picks an adapter and opens a device with the adapter's full limits (wgpu's defaults
    /// allow only 16 KiB of workgroup memory and 128 MiB bindings) and timestamp queries where
    /// available.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(choice: &AdapterChoice) -> Result<GpuContext> {
        pollster::block_on(Self::new_async(choice))
    }

    /// As [`GpuContext::new`], for async callers; the only form in the browser, where it
    /// opens the page's WebGPU adapter. Only what the adapter grants is requested: its own
    /// limits (the planner sizes everything from them), and timestamp queries and subgroups
    /// only where it has them.
    pub async fn new_async(choice: &AdapterChoice) -> Result<GpuContext> {
        let adapter = choose_adapter(choice).await?;
        let info = adapter.get_info();
        log::info!("using adapter {}", AdapterSummary::from(&info));
        let limits = adapter.limits();
        let features = adapter.features()
            & (wgpu::Features::TIMESTAMP_QUERY
                | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
                | wgpu::Features::SUBGROUP
                | wgpu::Features::SHADER_INT64);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("resnet-wgpu"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Device(format!("{e} (adapter {})", info.name)))?;
        Ok(GpuContext::from_device(device, queue, info))
    }

    /// Wraps a device the application already has (e.g. its renderer's). This installs the
    /// device's lost callback and uncaptured-error handler (wgpu keeps one of each, so an app
    /// that needs its own should install them after this call and forward to
    /// [`GpuContext::report_device_lost`] / [`GpuContext::report_error`]).
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
    ) -> GpuContext {
        let limits = device.limits();
        let features = device.features();
        let watch = Watch::install(&device);
        GpuContext {
            device,
            queue,
            info,
            limits,
            features,
            watch,
        }
    }

    /// Records that the device was lost: every later call on it returns
    /// [`Error::DeviceLost`].
    pub fn report_device_lost(&self, why: &str) {
        lock(&self.watch.lost).get_or_insert_with(|| why.to_string());
    }

    /// Records a GPU error that no error scope captured: the next [`GpuContext::check`]
    /// returns it as [`Error::Gpu`].
    pub fn report_error(&self, error: &str) {
        *lock(&self.watch.uncaptured) = Some(error.to_string());
    }

    /// `Err` if the device was lost ([`Error::DeviceLost`], every time) or wgpu reported an
    /// error outside our error scopes since the last check ([`Error::Gpu`], once: the call
    /// that sees it fails, its results untrusted). Such an error belongs to the device, so the
    /// first session (or app call) on it that checks reports it.
    pub fn check(&self) -> Result<()> {
        self.check_lost()?;
        if let Some(e) = lock(&self.watch.uncaptured).take() {
            return Err(Error::Gpu(format!(
                "{e} (reported by wgpu outside this call; its results are not trusted)"
            )));
        }
        Ok(())
    }

    /// `Err(DeviceLost)` if the device was lost.
    fn check_lost(&self) -> Result<()> {
        // wgpu calls the lost callback from its maintenance, not from `destroy` or a driver
        // reset: a non-blocking poll delivers it now.
        let _ = self.device.poll(wgpu::PollType::Poll);
        match lock(&self.watch.lost).as_ref() {
            Some(why) => Err(Error::DeviceLost(why.clone())),
            None => Ok(()),
        }
    }

    /// `error`, unless the device was lost, which explains it better.
    pub fn explain(&self, error: Error) -> Error {
        self.check_lost().err().unwrap_or(error)
    }

    /// The deadline of every wait on this device (shared by all clones).
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.watch.timeout_ns.load(Ordering::Relaxed))
    }

    /// Sets the deadline of every wait on this device ([`TIMEOUT_ENV`] sets the default);
    /// zero makes every wait that would block a timeout.
    pub fn set_timeout(&self, timeout: Duration) {
        self.watch
            .timeout_ns
            .store(nanos(timeout), Ordering::Relaxed);
    }

    /// Blocks until submission `index` (the latest, for `None`) has finished and its callbacks
    /// have run, for at most [`GpuContext::timeout`]; `what` names the work in errors. A lost
    /// device is [`Error::DeviceLost`]; an error wgpu reported meanwhile outside our scopes is
    /// [`Error::Gpu`], after the wait (so that its callbacks have run).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self, index: Option<wgpu::SubmissionIndex>, what: &str) -> Result<()> {
        self.check_lost()?;
        let timeout = self.timeout();
        let deadline = std::time::Instant::now() + timeout;
        // Short waits in a loop: some backends cap one wait (GL at ~4.3 s).
        let polled = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let polled = self.device.poll(wgpu::PollType::Wait {
                submission_index: index.clone(),
                timeout: Some(left.min(Duration::from_secs(1))),
            });
            match polled {
                Err(wgpu::PollError::Timeout) if !left.is_zero() => {
                    self.check_lost()?;
                    continue;
                }
                other => break other,
            }
        };
        self.check()?;
        match polled {
            Ok(_) => Ok(()),
            Err(wgpu::PollError::Timeout) => Err(Error::Timeout {
                what: what.to_string(),
                seconds: timeout.as_secs_f64(),
            }),
            Err(e) => {
                // A device destroyed before the submission was made rejects the wait itself;
                // waiting for what did go through runs wgpu's maintenance, which reports
                // the loss.
                let _ = self.device.poll(wgpu::PollType::Wait {
                    submission_index: None,
                    timeout: Some(Duration::from_secs(1)),
                });
                self.check_lost()?;
                Err(Error::Gpu(format!("waiting for {what}: {e}")))
            }
        }
    }

    /// As [`GpuContext::wait`], for async callers. Natively this is the blocking wait (wgpu
    /// delivers callbacks only inside `Device::poll`, so there is nothing to yield to); in the
    /// browser it yields to the event loop until the queue has finished everything submitted
    /// so far (`index` cannot be narrower there), for at most [`GpuContext::timeout`].
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn wait_async(&self, index: Option<wgpu::SubmissionIndex>, what: &str) -> Result<()> {
        self.wait(index, what)
    }

    /// See the native form: yields to the browser until the queue is idle.
    #[cfg(target_arch = "wasm32")]
    pub async fn wait_async(&self, index: Option<wgpu::SubmissionIndex>, what: &str) -> Result<()> {
        let _ = index;
        self.check_lost()?;
        let done = Callback::new();
        let send = done.sender();
        self.queue.on_submitted_work_done(move || send(()));
        let finished = callback::within(done.recv(), self.timeout()).await;
        self.check()?;
        finished.ok_or_else(|| self.timeout_error(what))
    }

    /// What a wgpu callback delivered, after a wait for the work it belongs to: natively it
    /// ran inside that wait's poll or it never will (`None`).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) async fn delivered<T: Send + 'static>(&self, callback: &Callback<T>) -> Option<T> {
        callback.take()
    }

    /// In the browser the callback may come a little after the queue went idle: it is
    /// awaited, for at most [`GpuContext::timeout`] (then `None`).
    #[cfg(target_arch = "wasm32")]
    pub(crate) async fn delivered<T: Send + 'static>(&self, callback: &Callback<T>) -> Option<T> {
        match callback.take() {
            Some(v) => Some(v),
            None => callback::within(callback.recv(), self.timeout()).await,
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn timeout_error(&self, what: &str) -> Error {
        Error::Timeout {
            what: what.to_string(),
            seconds: self.timeout().as_secs_f64(),
        }
    }

    /// The adapter's identity, as logs and reports print it.
    pub fn summary(&self) -> AdapterSummary {
        AdapterSummary::from(&self.info)
    }

    /// The device's limits and features as the planner takes them.
    pub fn plan_limits(&self) -> crate::plan::Limits {
        crate::plan::Limits::from_wgpu(&self.limits, self.features)
    }

    /// What the planner needs to know of this device, as a file `resnet plan --device` reads
    /// ([`crate::plan::device::Description`]).
    pub fn description(&self) -> crate::plan::device::Description {
        crate::plan::device::Description::new(&self.info, &self.limits, self.features)
    }

    /// Whether this is a software rasteriser (lavapipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_positive_finite_seconds() {
        assert_eq!(parse_timeout("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_timeout(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_timeout("1e-3"), Some(Duration::from_millis(1)));
        for bad in ["", "0", "-1", "abc", "NaN", "inf", "1e400", "10s", "1,5"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }
}
