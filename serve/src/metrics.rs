//! Prometheus metrics under Triton's names, written by hand in the text exposition format.

use crate::batcher::Kind;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the batch-size histogram's buckets.
const BATCH_BUCKETS: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// A counter's name, help text and value.
type Counter = (&'static str, &'static str, fn(&PerModel) -> u64);

#[derive(Default, Clone, Copy)]
struct PerModel {
    success: u64,
    failure: u64,
    count: u64,
    exec_count: u64,
    request_us: u64,
    queue_us: u64,
    compute_us: u64,
}

#[derive(Default)]
struct Inner {
    models: [PerModel; 2],
    /// Batches per bucket of [`BATCH_BUCKETS`] (not cumulative), then the total images.
    batches: [u64; BATCH_BUCKETS.len() + 1],
    batch_images: u64,
    batch_count: u64,
}

/// Counters of one checkpoint's two models.
pub struct Metrics {
    names: [String; 2],
    inner: Mutex<Inner>,
}

impl Metrics {
    /// `names`: the tensor model's and the image model's.
    pub fn new(names: [String; 2]) -> Metrics {
        Metrics {
            names,
            inner: Mutex::default(),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.inner.lock().expect("metrics lock"));
    }

    /// A request answered with `n` rows.
    pub fn success(&self, kind: Kind, n: usize, request_us: u64, queue_us: u64, compute_us: u64) {
        self.with(|i| {
            let m = &mut i.models[kind as usize];
            m.success += 1;
            m.count += n as u64;
            m.request_us += request_us;
            m.queue_us += queue_us;
            m.compute_us += compute_us;
        });
    }

    /// A request answered with an error.
    pub fn failure(&self, kind: Kind) {
        self.with(|i| i.models[kind as usize].failure += 1);
    }

    /// One forward pass of `images`, holding requests of `kinds`.
    pub fn record_batch(&self, images: usize, kinds: impl Iterator<Item = Kind>) {
        let mut seen = [false; 2];
        for k in kinds {
            seen[k as usize] = true;
        }
        self.with(|i| {
            for (m, seen) in i.models.iter_mut().zip(seen) {
                m.exec_count += u64::from(seen);
            }
            let b = BATCH_BUCKETS
                .iter()
                .position(|&le| images <= le)
                .unwrap_or(BATCH_BUCKETS.len());
            i.batches[b] += 1;
            i.batch_images += images as u64;
            i.batch_count += 1;
        });
    }

    /// The text exposition; `pipelines`: the session's compute pipelines so far.
    pub fn render(&self, pipelines: usize) -> String {
        let i = self.inner.lock().expect("metrics lock");
        let mut s = String::new();
        let counters: [Counter; 7] = [
            (
                "nv_inference_request_success",
                "Number of successful inference requests",
                |m| m.success,
            ),
            (
                "nv_inference_request_failure",
                "Number of failed inference requests",
                |m| m.failure,
            ),
            (
                "nv_inference_count",
                "Number of inferences performed (one per image)",
                |m| m.count,
            ),
            (
                "nv_inference_exec_count",
                "Number of model executions (forward passes) performed",
                |m| m.exec_count,
            ),
            (
                "nv_inference_request_duration_us",
                "Cumulative inference request duration in microseconds",
                |m| m.request_us,
            ),
            (
                "nv_inference_queue_duration_us",
                "Cumulative inference queuing duration in microseconds",
                |m| m.queue_us,
            ),
            (
                "nv_inference_compute_infer_duration_us",
                "Cumulative compute inference duration in microseconds",
                |m| m.compute_us,
            ),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for (model, m) in self.names.iter().zip(&i.models) {
                let _ = writeln!(s, "{name}{{model=\"{model}\",version=\"1\"}} {}", get(m));
            }
        }
        let name = "resnet_batch_size";
        let _ = writeln!(
            s,
            "# HELP {name} Images per forward pass (dynamic batching)\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (le, n) in BATCH_BUCKETS.iter().zip(&i.batches) {
            cumulative += n;
            let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {}", i.batch_count);
        let _ = writeln!(
            s,
            "{name}_sum {}\n{name}_count {}",
            i.batch_images, i.batch_count
        );
        let name = "resnet_pipelines";
        let _ = writeln!(
            s,
            "# HELP {name} Compute pipelines the GPU session created (all at start-up)\n# TYPE {name} gauge\n{name} {pipelines}"
        );
        s
    }
}
