//! The single writer: batches arrive on a channel from the actors, whatever has queued up is
//! committed in one transaction (group commit), and each sender learns when its batch is
//! durable. This keeps SQLite's fsyncs off the actor thread and amortised under load.

use super::{Batch, Store, StoreError};
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// A failed commit's error, shared by every batch of its group.
type Outcome = Result<(), Arc<StoreError>>;
type Reply = oneshot::Sender<Outcome>;
/// Runs on the writer thread right after its batch is durable, in commit order: this is
/// how messages to agents are sent only once what they announce is on disk.
pub type AfterCommit = Box<dyn FnOnce() + Send>;
type Job = (Batch, AfterCommit, Reply);

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread; it ends when the last `Writer` clone is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("gpuspot-store".into())
            .spawn(move || run(store, rx))
            .expect("spawn store writer thread");
        Self { tx }
    }

    /// Queues `batch`; `after` runs once it is committed. The returned future resolves
    /// then too (awaiting it is optional).
    pub fn submit(
        &self,
        batch: Batch,
        after: AfterCommit,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + use<> {
        let (reply, done) = oneshot::channel();
        let sent = self.tx.send((batch, after, reply));
        async move {
            sent.map_err(|_| StoreError::WriterGone)?;
            done.await.map_err(|_| StoreError::WriterGone)?.map_err(|e| match &*e {
                // Unreachable is worth retrying, and says so to the API (503).
                StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
                other => StoreError::Corrupt("commit".into(), other.to_string()),
            })
        }
    }
}

fn run(store: Arc<dyn Store>, rx: mpsc::Receiver<Job>) {
    const MAX_GROUP: usize = 512;
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let batches: Vec<Batch> = group.iter_mut().map(|(b, _, _)| std::mem::take(b)).collect();
        let non_empty: Vec<Batch> = batches.into_iter().filter(|b| !b.is_empty()).collect();
        let started = std::time::Instant::now();
        let result = if non_empty.is_empty() {
            Ok(())
        } else {
            let committed = store.commit(&non_empty);
            crate::metrics::METRICS.store_commit.observe(started.elapsed().as_secs_f64());
            committed.map_err(|e| {
                tracing::error!(error = %e, batches = non_empty.len(), "store commit failed; changes not acknowledged");
                Arc::new(e)
            })
        };
        for (_, after, reply) in group {
            if result.is_ok() {
                after();
            }
            let _ = reply.send(result.clone());
        }
    }
}
