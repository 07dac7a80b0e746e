//! Polling until something holds: the one wait loop of the edge tests.

use std::time::{Duration, Instant};

/// Probes every 250 ms until `done` holds for the value, or `timeout` passes; returns the last
/// value either way, for the caller to assert on with a message that shows it.
pub async fn poll<T>(timeout: Duration, mut probe: impl AsyncFnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let value = probe().await;
        if done(&value) || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Probes until `done()` is true; fails the test after `timeout`, naming `what`.
pub async fn wait_until(what: &str, timeout: Duration, done: impl AsyncFnMut() -> bool) {
    assert!(poll(timeout, done, |&ok| ok).await, "timed out waiting until {what}");
}
