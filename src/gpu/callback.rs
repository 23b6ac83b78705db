//! Values that wgpu hands to callbacks (buffer mappings, finished submissions), for blocking
//! and async callers alike, and (in the browser) a deadline on awaiting them.
//!
//! Natively a callback runs inside `Device::poll`, so the blocking waits poll and then
//! [`Callback::take`]. In the browser the device is polled by the browser's own event loop:
//! a wait must yield to it, so it awaits [`Callback::recv`] instead, raced against a
//! `setTimeout` ([`within`]) because no thread can watch it.

use super::lock;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A slot that one callback fills once.
pub(crate) struct Callback<T> {
    shared: Arc<Mutex<Slot<T>>>,
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

impl<T: Send + 'static> Callback<T> {
    pub(crate) fn new() -> Callback<T> {
        Callback {
            shared: Arc::new(Mutex::new(Slot {
                value: None,
                waker: None,
            })),
        }
    }

    /// The function to give wgpu: stores its argument and wakes an awaiting [`recv`].
    ///
    /// [`recv`]: Callback::recv
    pub(crate) fn sender(&self) -> impl FnOnce(T) + Send + 'static {
        let shared = Arc::clone(&self.shared);
        move |value| {
            let waker = {
                let mut slot = lock(&shared);
                slot.value = Some(value);
                slot.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// The value, if the callback has run.
    pub(crate) fn take(&self) -> Option<T> {
        lock(&self.shared).value.take()
    }

    /// Resolves with the value once the callback has run.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn recv(&self) -> impl Future<Output = T> + '_ {
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            let mut slot = lock(&self.shared);
            match slot.value.take() {
                Some(v) => Poll::Ready(v),
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

/// Resolves after `timeout` (the browser's `setTimeout`; at most ~24.8 days, its own bound).
#[cfg(target_arch = "wasm32")]
pub(crate) async fn sleep(timeout: std::time::Duration) {
    use wasm_bindgen_futures::wasm_bindgen::{JsCast, JsValue};
    let ms = timeout.as_secs_f64() * 1e3;
    let ms = ms.min(f64::from(i32::MAX)) as i32;
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        // `setTimeout` of whatever global this runs in: a window or a worker.
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&global, &resolve, &JsValue::from(ms));
            }
            // No timers at all: resolve at once rather than never.
            None => {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// `Some(output)` of `future`, or `None` if `timeout` passes first.
#[cfg(target_arch = "wasm32")]
pub(crate) async fn within<F: Future>(
    future: F,
    timeout: std::time::Duration,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer = std::pin::pin!(sleep(timeout));
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
