//! Dynamic batching: one std thread owns the GPU session; requests reach it through a channel
//! and are merged into one forward pass of up to `max_batch` images within the queue delay.

use crate::metrics::Metrics;
use resnet_wgpu::{Classifier, Error};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Which of a checkpoint's two models a request was sent to (metrics are per model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `NAME`: preprocessed FP32 input.
    Tensor = 0,
    /// `NAME_image`: encoded images, preprocessed on the server.
    Image = 1,
}

/// One request's preprocessed images, waiting for the GPU.
pub struct Job {
    pub kind: Kind,
    pub input: Vec<f32>,
    pub n: usize,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Done, Failure>>,
}

/// A request's own rows of a batch's logits.
pub struct Done {
    pub logits: Vec<f32>,
    pub queue_us: u64,
    pub compute_us: u64,
}

/// Why a job got no logits.
#[derive(Debug)]
pub enum Failure {
    /// The device is gone: 503, and every later request too.
    DeviceLost(String),
    /// The queue is full: 503 with Retry-After.
    QueueFull(usize),
    /// The server is shutting down and no longer takes work.
    Stopped,
    /// The forward pass failed.
    Failed(String),
}

/// The GPU thread's front door.
pub struct Batcher {
    tx: Mutex<Option<Sender<Job>>>,
    queued: Arc<AtomicUsize>,
    max_queue: usize,
    lost: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Batcher {
    /// Starts the GPU thread. `max_queue`: requests waiting at most (0: no limit).
    pub fn start(
        classifier: Arc<Classifier>,
        max_batch: usize,
        delay: Duration,
        max_queue: usize,
        metrics: Arc<Metrics>,
    ) -> Batcher {
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let lost = Arc::new(AtomicBool::new(false));
        let (q, l) = (queued.clone(), lost.clone());
        let thread = std::thread::Builder::new()
            .name("gpu".into())
            .spawn(move || {
                // A panic on the GPU thread ends the batcher: later requests and readiness
                // then say the device is gone (503) instead of "shutting down".
                let run = std::panic::AssertUnwindSafe(|| {
                    gpu_loop(&classifier, &rx, max_batch, delay, &q, &l, &metrics)
                });
                if std::panic::catch_unwind(run).is_err() {
                    l.store(true, Ordering::SeqCst);
                }
            })
            .expect("spawn the GPU thread");
        Batcher {
            tx: Mutex::new(Some(tx)),
            queued,
            max_queue,
            lost,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Queues a job; its answer comes through `job.reply`.
    pub fn submit(&self, job: Job) -> Result<(), Failure> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Failure::DeviceLost("the GPU device was lost".into()));
        }
        let before = self.queued.fetch_add(1, Ordering::SeqCst);
        if self.max_queue > 0 && before >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Failure::QueueFull(self.max_queue));
        }
        let tx = self.tx.lock().expect("batcher lock");
        match tx.as_ref().map(|tx| tx.send(job)) {
            Some(Ok(())) => Ok(()),
            _ => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(Failure::Stopped)
            }
        }
    }

    /// Whether the device was lost (every request then gets a 503).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Closes the queue, lets the GPU thread answer what it holds, and waits for it.
    pub fn stop(&self) {
        self.tx.lock().expect("batcher lock").take();
        if let Some(t) = self.thread.lock().expect("batcher lock").take() {
            let _ = t.join();
        }
    }
}

fn gpu_loop(
    classifier: &Classifier,
    rx: &Receiver<Job>,
    max_batch: usize,
    delay: Duration,
    queued: &AtomicUsize,
    lost: &AtomicBool,
    metrics: &Metrics,
) {
    let classes = classifier.labels().len();
    let lose_device_after = resnet_wgpu::classify::failpoint_device_lost_after();
    let mut batches_run = 0usize;
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let deadline = Instant::now() + delay;
        let mut total = first.n;
        let mut jobs = vec![first];
        while total < max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                rx.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                rx.recv_timeout(left)
            };
            match next {
                Ok(j) if total + j.n > max_batch => {
                    carry = Some(j);
                    break;
                }
                Ok(j) => {
                    total += j.n;
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        queued.fetch_sub(jobs.len(), Ordering::SeqCst);
        let started = Instant::now();
        let mut input = Vec::with_capacity(jobs.iter().map(|j| j.input.len()).sum());
        for j in &jobs {
            input.extend_from_slice(&j.input);
        }
        let result = if lost.load(Ordering::SeqCst) {
            Err(Error::DeviceLost("the GPU device was lost".into()))
        } else {
            classifier.logits(&input, total)
        };
        let compute_us = started.elapsed().as_micros() as u64;
        metrics.record_batch(total, jobs.iter().map(|j| j.kind));
        batches_run += 1;
        if lose_device_after == Some(batches_run) {
            classifier.session().context().device.destroy();
        }
        match result {
            Ok(logits) => {
                let mut row = 0;
                for j in jobs {
                    let rows = logits[row * classes..(row + j.n) * classes].to_vec();
                    row += j.n;
                    let queue_us = started.duration_since(j.enqueued).as_micros() as u64;
                    let _ = j.reply.send(Ok(Done {
                        logits: rows,
                        queue_us,
                        compute_us,
                    }));
                }
            }
            Err(e) => {
                let is_lost = matches!(e, Error::DeviceLost(_));
                if is_lost {
                    lost.store(true, Ordering::SeqCst);
                }
                for j in jobs {
                    let f = if is_lost {
                        Failure::DeviceLost(e.to_string())
                    } else {
                        Failure::Failed(e.to_string())
                    };
                    let _ = j.reply.send(Err(f));
                }
            }
        }
    }
}
