//! What both transports share: the models served, admission, and one inference from a parsed
//! request to its answer (parsing on the blocking pool, the queue, the GPU thread, metrics).
//! Errors are [`Refusal`]s, which HTTP turns into a status and gRPC into a code.

use crate::batcher::{Batcher, Failure, Job, Kind};
use crate::metrics::Metrics;
use crate::protocol::{self, Answer, Prepared, Spec};
use resnet_wgpu::classifier::{Classifier, softmax};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request got no answer.
#[derive(Debug)]
pub enum Refusal {
    /// HTTP 400, gRPC INVALID_ARGUMENT.
    Bad(String),
    /// HTTP 404, gRPC NOT_FOUND: an unknown model or version.
    NotFound(String),
    /// HTTP 503 with Retry-After, gRPC UNAVAILABLE: the queue is full, too many bodies are
    /// being read, the device was lost or the server is stopping.
    Unavailable(String),
    /// HTTP 500, gRPC INTERNAL: the forward pass failed for another reason.
    Internal(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Bad(m)
            | Refusal::NotFound(m)
            | Refusal::Unavailable(m)
            | Refusal::Internal(m) => m,
        }
    }
}

impl From<Failure> for Refusal {
    fn from(f: Failure) -> Refusal {
        match f {
            Failure::QueueFull(q) => Refusal::Unavailable(format!(
                "the queue is full ({q} requests waiting); retry later"
            )),
            Failure::DeviceLost(m) => {
                Refusal::Unavailable(format!("the GPU device was lost ({m}); restart the server"))
            }
            Failure::Stopped => Refusal::Unavailable("the server is shutting down".into()),
            Failure::Failed(m) => Refusal::Internal(format!("the forward pass failed: {m}")),
        }
    }
}

pub struct App {
    pub spec: Spec,
    pub classifier: Arc<Classifier>,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    pub delay_us: u64,
    pub max_queue: usize,
    pub max_body: usize,
    pub body_timeout: Duration,
    /// Requests whose body is being read or parsed at once, over both transports: each may
    /// hold a body of up to `max_body` and its parsed form, before `--max-queue` counts it.
    pub reading: Arc<Semaphore>,
}

/// Bodies read and parsed at once, at most: four batches' worth, within 16..=256.
pub fn reading_permits(max_batch: usize) -> usize {
    (4 * max_batch).clamp(16, 256)
}

/// An inference's answer.
pub struct Inferred<T> {
    pub n: usize,
    pub answer: Answer,
    /// What the transport's parser kept for its reply (an id, the binary flag).
    pub reply: T,
}

impl App {
    /// Which model `model` names.
    pub fn kind(&self, model: &str) -> Result<Kind, Refusal> {
        if model == self.spec.name {
            Ok(Kind::Tensor)
        } else if model == self.spec.image_name {
            Ok(Kind::Image)
        } else {
            Err(Refusal::NotFound(format!(
                "unknown model `{model}`; this server serves `{}` and `{}`",
                self.spec.name, self.spec.image_name
            )))
        }
    }

    /// A model version: `1`, or empty (gRPC's "the default").
    pub fn version(&self, version: &str) -> Result<(), Refusal> {
        if version == protocol::VERSION || version.is_empty() {
            Ok(())
        } else {
            Err(Refusal::NotFound(format!(
                "unknown model version `{version}`; the only version is `1`"
            )))
        }
    }

    /// Whether the server can answer inferences (false once the device was lost).
    pub fn ready(&self) -> bool {
        !self.batcher.lost()
    }

    /// A permit to read and parse one request body; else the 503 / UNAVAILABLE to answer.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        self.reading.clone().try_acquire_owned().map_err(|_| {
            Refusal::Unavailable(format!(
                "{} requests are being read already; retry later",
                reading_permits(self.spec.max_batch)
            ))
        })
    }

    /// One inference on model `kind`: `parse` checks the request and makes the GPU's input
    /// (on the blocking pool, never on the GPU's thread); `reading` is released once it has.
    /// Success is counted in the metrics here; the caller counts failures (with its own).
    pub async fn infer<T, P>(
        self: &Arc<Self>,
        kind: Kind,
        started: Instant,
        reading: Option<OwnedSemaphorePermit>,
        parse: P,
    ) -> Result<Inferred<T>, Refusal>
    where
        T: Send + 'static,
        P: FnOnce(&Spec) -> Result<(Prepared, T), String> + Send + 'static,
    {
        let app = self.clone();
        let (mut req, reply) = tokio::task::spawn_blocking(move || parse(&app.spec))
            .await
            .map_err(|e| Refusal::Internal(format!("the request's parser failed: {e}")))?
            .map_err(Refusal::Bad)?;
        // The body is parsed: from here `--max-queue` bounds what waits.
        drop(reading);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.batcher.submit(Job {
            kind,
            input: std::mem::take(&mut req.input),
            n: req.n,
            enqueued: Instant::now(),
            reply: tx,
        })?;
        let done = rx.await.map_err(|_| Failure::Stopped)??;
        let classifier = &self.classifier;
        let answer = Answer::new(&self.spec, req.classification, done.logits, |row, k| {
            let mut p = row.to_vec();
            softmax(&mut p);
            classifier
                .top_k(&p, k)
                .into_iter()
                .map(|p| (p.index, p.probability))
                .collect()
        });
        self.metrics.success(
            kind,
            req.n,
            started.elapsed().as_micros() as u64,
            done.queue_us,
            done.compute_us,
        );
        Ok(Inferred {
            n: req.n,
            answer,
            reply,
        })
    }
}
