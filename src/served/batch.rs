//! Group commit: the daemon's writes go to one writer thread, which commits whatever has
//! queued up in one transaction.
//!
//! A commit costs more than the statements of one update (WAL append, locks), only one writer
//! can run at a time anyway, and handing each request to a pool thread costs more again in
//! wake-ups. So async callers queue their operation for a single writer thread and await its
//! answer. The writer takes every queued operation, runs each in a savepoint of one `BEGIN
//! IMMEDIATE` transaction, commits once, and answers each. An operation that fails rolls back
//! its savepoint only; a failed commit fails them all, and nothing of any of them remains.
//! Every caller still gets its answer only after the commit that holds its write.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, OnceLock};

use rusqlite::Transaction;
use tokio::sync::oneshot;

use super::{Committer, lock};
use crate::store::StoreError;

/// Most operations in one transaction: bounds the time the write lock is held.
const MAX_BATCH: usize = 256;

/// Delivers one operation's result once the batch's fate is known (`Some` commit error).
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// One queued operation and the caller waiting for it.
struct Pending<T, F> {
    operation: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

/// A queued operation, whatever its result type.
trait Job: Send {
    /// Runs in the batch's transaction; returns how to deliver the result after the commit.
    /// An error here fails the whole batch (and is also this caller's answer).
    fn run(self: Box<Self>, tx: &Transaction<'_>) -> Result<Finish, StoreError>;
    /// The batch failed before this operation ran.
    fn fail(self: Box<Self>, error: &StoreError);
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send,
{
    fn run(self: Box<Self>, tx: &Transaction<'_>) -> Result<Finish, StoreError> {
        let Self { operation, reply } = *self;
        let outcome = match in_savepoint(tx, operation) {
            Ok(outcome) => outcome,
            Err(error) => {
                let _ = reply.send(Err(StoreError::Commit(error.to_string())));
                return Err(error);
            }
        };
        Ok(Box::new(move |commit_error: Option<&StoreError>| {
            let result = match (outcome, commit_error) {
                (Ok(_), Some(error)) => Err(StoreError::Commit(error.to_string())),
                (outcome, _) => outcome,
            };
            // The caller may have gone (its request was cancelled); the write stands.
            let _ = reply.send(result);
        }))
    }

    fn fail(self: Box<Self>, error: &StoreError) {
        let _ = self.reply.send(Err(StoreError::Commit(error.to_string())));
    }
}

/// The queue to the writer thread, started on first use.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: OnceLock<Mutex<Sender<Box<dyn Job>>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Queues `operation` for the writer thread (started with `committer` on first use) and
    /// waits for its commit.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        committer: Committer,
        operation: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, receiver) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending { operation, reply });
        let queue = self
            .queue
            .get_or_init(|| Mutex::new(start_writer(committer)));
        lock(queue)
            .send(job)
            .map_err(|_| StoreError::Task("the writer thread has stopped".into()))?;
        receiver
            .await
            .unwrap_or_else(|_| Err(StoreError::Commit("the batch was abandoned".into())))
    }
}

/// Starts the writer thread, which ends when the queue's sender (held by the `GroupCommit`)
/// is dropped.
fn start_writer(committer: Committer) -> Sender<Box<dyn Job>> {
    let (sender, receiver) = channel();
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run_writer(&committer, &receiver))
        .expect("the writer thread starts");
    sender
}

/// Commits batches until every sender is gone.
fn run_writer(committer: &Committer, receiver: &Receiver<Box<dyn Job>>) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        jobs.extend(receiver.try_iter().take(MAX_BATCH - 1));
        crate::metrics::metrics()
            .commit_batch_size
            .observe(jobs.len() as f64);
        let mut jobs = jobs.into_iter();
        let mut finishers = Vec::with_capacity(jobs.len());
        // A panicking operation must not take the writer thread down with it: the transaction
        // rolls back as the panic unwinds, and the batch fails like any other failed batch.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            committer.write(|tx| {
                for job in jobs.by_ref() {
                    finishers.push(job.run(tx)?);
                }
                Ok(())
            })
        }))
        .unwrap_or_else(|_| Err(StoreError::Task("a write panicked".into())));
        let error = outcome.err();
        if let Some(error) = &error {
            tracing::error!(%error, "group commit failed: none of its writes was kept");
            // Those the batch did not reach get the same answer.
            for job in jobs {
                job.fail(error);
            }
        }
        for finish in finishers {
            finish(error.as_ref());
        }
    }
}

/// Runs `operation` in a savepoint of `tx`: kept on success, undone on failure.
fn in_savepoint<T>(
    tx: &Transaction<'_>,
    operation: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<Result<T, StoreError>, StoreError> {
    tx.execute_batch("SAVEPOINT job")?;
    match operation(tx) {
        Ok(value) => {
            tx.execute_batch("RELEASE job")?;
            Ok(Ok(value))
        }
        Err(error) => {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Ok(Err(error))
        }
    }
}

#[cfg(test)]
mod test {
    use std::time::Duration;

    use crate::model::Plan;
    use crate::served::Served;
    use crate::store::users::insert_user;
    use crate::store::{Store, StoreError, StoreOptions};

    fn user_count(store: &Store, name: &str) -> i64 {
        store
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT count(*) FROM users WHERE username = ?1",
                    [name],
                    |row| row.get(0),
                )?)
            })
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), &StoreOptions::default()).unwrap();
        let served = Served::without_index(store.clone());
        let writes = (0..100).map(|i| {
            let (store, served) = (store.clone(), served.clone());
            tokio::spawn(async move {
                let name = format!("user{i}");
                let written = name.clone();
                let result = served
                    .write(move |tx| {
                        insert_user(
                            tx,
                            &written,
                            &format!("{written}@example.com"),
                            "$x",
                            Plan::Free,
                            "t",
                        )?;
                        if i % 5 == 0 {
                            return Err(StoreError::Conflict("refused on purpose".into()));
                        }
                        Ok(i)
                    })
                    .await;
                // Answered only after the commit: another connection sees the row already.
                (i, result.is_ok(), user_count(&store, &name))
            })
        });
        for write in writes.collect::<Vec<_>>() {
            let (i, ok, rows) = write.await.unwrap();
            assert_eq!(ok, i % 5 != 0, "write {i}");
            assert_eq!(
                rows,
                i64::from(ok),
                "write {i}: kept exactly when it succeeded"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), &StoreOptions::default()).unwrap();
        let served = Served::without_index(store.clone());
        let panicking = served
            .write(|tx| -> Result<(), StoreError> {
                insert_user(tx, "ghost", "g@example.com", "$x", Plan::Free, "t")?;
                panic!("a bug in an operation")
            })
            .await;
        assert!(panicking.is_err());
        assert_eq!(user_count(&store, "ghost"), 0, "rolled back");
        served
            .write(|tx| insert_user(tx, "carol", "c@example.com", "$x", Plan::Free, "t"))
            .await
            .expect("the writer thread survived");
        assert_eq!(user_count(&store, "carol"), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_write_in_it_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            busy_timeout: Duration::from_millis(50),
            ..StoreOptions::default()
        };
        let path = dir.path().join("t.db");
        let store = Store::open(&path, &options).unwrap();
        let served = Served::without_index(store.clone());
        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let add = |name: &'static str| {
            let served = served.clone();
            async move {
                served
                    .write(move |tx| insert_user(tx, name, "x@example.com", "$x", Plan::Free, "t"))
                    .await
            }
        };
        let error = add("alice").await.unwrap_err();
        assert!(error.to_string().contains("locked"), "{error}");
        blocker.execute_batch("ROLLBACK").unwrap();
        assert_eq!(user_count(&store, "alice"), 0);
        add("bob")
            .await
            .expect("the writer goes on after a failed batch");
        assert_eq!(user_count(&store, "bob"), 1);
    }
}
