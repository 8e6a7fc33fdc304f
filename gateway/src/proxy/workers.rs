//! Worker threads: one single-threaded event loop per thread, as nginx runs
//! one per worker process.
//!
//! Each client connection lives on one worker from accept to close, together
//! with the upstream connections its requests use (each worker has its own
//! idle pool, see [`current`]). A request therefore never wakes a task on
//! another thread and never shares a run queue, an I/O driver or a timer
//! wheel with the other workers; a work-stealing runtime pays for all three
//! on every proxied request. New connections go to the worker with the
//! fewest open ones.
//!
//! Everything else (the accept loop, the admin listener, loading the IdPs'
//! keys, metrics upkeep) runs on the runtime that called
//! [`run`](super::server::run).

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The calling thread's worker number: `1..=n` on a worker thread, `0`
/// anywhere else. Per-worker state (the upstream pools) is indexed by it.
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// The worker count for `configured` (`server.worker_threads`): one per core
/// when not set.
pub fn count(configured: Option<usize>) -> usize {
    configured
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
}

struct Worker {
    handle: Handle,
    open: Arc<AtomicUsize>,
}

/// The running workers; dropping this stops them (their remaining tasks are
/// dropped with their runtimes).
pub struct Workers {
    workers: Vec<Worker>,
    stop: CancellationToken,
}

impl Workers {
    /// Starts `n` worker threads, each running a current-thread runtime.
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut workers = Vec::with_capacity(n);
        for index in 1..=n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let stopped = stop.clone();
            std::thread::Builder::new()
                .name(format!("gateway-worker-{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(index));
                    runtime.block_on(stopped.cancelled());
                })?;
            workers.push(Worker {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(Workers { workers, stop })
    }

    /// Runs `connection` on the worker with the fewest open connections,
    /// tracked by `tracker`.
    pub fn spawn<F>(&self, tracker: &TaskTracker, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return;
        };
        let open = Open::new(worker.open.clone());
        tracker.spawn_on(
            async move {
                let _open = open;
                connection.await;
            },
            &worker.handle,
        );
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Counts one open connection on a worker while it lives.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: Arc<AtomicUsize>) -> Open {
        count.fetch_add(1, Ordering::Relaxed);
        Open(count)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_defaults_to_the_cores_and_is_never_zero() {
        assert_eq!(count(Some(3)), 3);
        assert_eq!(count(Some(0)), 1);
        assert!(count(None) >= 1);
    }

    #[tokio::test]
    async fn connections_spread_over_the_workers_and_run_on_them() {
        let workers = Workers::start(2).expect("workers start");
        let tracker = TaskTracker::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hold = CancellationToken::new();
        for _ in 0..4 {
            let (tx, hold) = (tx.clone(), hold.clone());
            // Each stays open until released, so the next goes elsewhere.
            workers.spawn(&tracker, async move {
                let _ = tx.send(current());
                hold.cancelled().await;
            });
            tokio::task::yield_now().await;
        }
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(rx.recv().await.expect("a connection ran"));
        }
        seen.sort_unstable();
        assert_eq!(seen, [1, 1, 2, 2], "two open connections per worker");
        assert_eq!(current(), 0, "the caller is not a worker");
        hold.cancel();
        tracker.close();
        tracker.wait().await;
        assert!(workers
            .workers
            .iter()
            .all(|w| w.open.load(Ordering::Relaxed) == 0));
    }
}
