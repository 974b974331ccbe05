//! Password checks, bounded: argon2id costs about 19 MiB and 15 ms of CPU each, so a flood of
//! guesses must neither take the memory nor starve the other requests. They run on a few
//! threads of their own, a bounded queue waits before them, and identical checks under way
//! are run once.

use std::sync::Arc;

/// Why a password check did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckError {
    /// The queue is full: answered `911` (503), which clients treat as "retry later".
    Busy,
    /// No check thread took it (never in a healthy process).
    Broken,
}

/// Bounds the password checks (argon2id: about 19 MiB and 15 ms of CPU each): they run on
/// `concurrency` threads of their own, at most `queue` more wait, and a request beyond that is
/// answered `911` (503) at once, which ddclient and inadyn treat as "retry later". Only checks
/// that need argon2 come here: API keys and remembered passwords never wait behind it.
///
/// Threads of their own, not tokio's blocking pool: that pool grows to hundreds of threads,
/// and glibc gives threads their own malloc arenas, each keeping the 19 MiB it last held. A
/// burst of guesses then left the process at 500 MB; with a fixed few threads it stays at a
/// few times 19 MiB.
#[derive(Debug)]
pub struct PasswordChecks {
    /// One permit per check that may run at once.
    permits: tokio::sync::Semaphore,
    /// How many checks may run at once: the permits given out (a reload may change it).
    concurrency: std::sync::Mutex<Concurrency>,
    /// Permits to take out of use as they come back (the concurrency was lowered while they
    /// were in use).
    surplus: std::sync::atomic::AtomicUsize,
    /// Checks waiting for a permit now.
    waiting: std::sync::atomic::AtomicUsize,
    /// The most that may wait (a reload may change it).
    queue: std::sync::atomic::AtomicUsize,
    /// Hands checks to the threads.
    jobs: std::sync::mpsc::Sender<PasswordJob>,
    /// Where the threads take checks from (new threads too).
    received: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<PasswordJob>>>,
    /// Checks under way, by [`PasswordCache::entry_key`]: the same user and password asked
    /// again meanwhile (a router's A and AAAA requests, a script's burst) waits for that one
    /// result instead of hashing again, or counting as another guess.
    under_way:
        std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>,
}

/// Takes a check's entry out of [`PasswordChecks::under_way`] when dropped, unless a newer
/// check already took its place.
struct UnderWayEntry<'a> {
    /// Where the entry is.
    checks: &'a PasswordChecks,
    /// Its key.
    key: [u8; 32],
    /// The cell this request shared.
    cell: Arc<tokio::sync::OnceCell<bool>>,
}

impl Drop for UnderWayEntry<'_> {
    fn drop(&mut self) {
        let mut under_way = self
            .checks
            .under_way
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if under_way
            .get(&self.key)
            .is_some_and(|current| Arc::ptr_eq(current, &self.cell))
        {
            under_way.remove(&self.key);
        }
    }
}

/// A password check for one of the check threads.
type PasswordJob = Box<dyn FnOnce() + Send>;

/// The checks allowed at once, and the threads started for them.
#[derive(Debug, Default)]
struct Concurrency {
    /// Checks allowed at once.
    allowed: usize,
    /// Threads started; never fewer than the most ever allowed (threads are never stopped:
    /// an idle one costs a blocked thread).
    threads: usize,
}

/// `concurrency`, or one per CPU core for 0.
fn threads_for(concurrency: usize) -> usize {
    if concurrency == 0 {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    } else {
        concurrency
    }
}

impl PasswordChecks {
    /// `concurrency` check threads (0: one per CPU core), `queue` waiting at most.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let (jobs, received) = std::sync::mpsc::channel::<PasswordJob>();
        let checks = Self {
            permits: tokio::sync::Semaphore::new(0),
            concurrency: std::sync::Mutex::default(),
            surplus: std::sync::atomic::AtomicUsize::new(0),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            queue: std::sync::atomic::AtomicUsize::new(queue),
            jobs,
            received: Arc::new(std::sync::Mutex::new(received)),
            under_way: std::sync::Mutex::default(),
        };
        checks.resize(concurrency, queue);
        checks
    }

    /// Allows `concurrency` checks at once (0: one per CPU core) and `queue` waiting, from
    /// now on. Raising it starts threads as needed and lets waiting checks run at once;
    /// lowering it takes places out of use as running checks finish (none is interrupted).
    pub fn resize(&self, concurrency: usize, queue: usize) {
        use std::sync::atomic::Ordering;
        self.queue.store(queue, Ordering::SeqCst);
        let wanted = threads_for(concurrency);
        let mut current = self
            .concurrency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while current.threads < wanted {
            self.start_thread(current.threads);
            current.threads += 1;
        }
        if wanted > current.allowed {
            let mut more = wanted - current.allowed;
            // Places still owed back from a lowering are kept instead of added.
            let owed = self.surplus.swap(0, Ordering::SeqCst);
            let kept = owed.min(more);
            more -= kept;
            self.surplus.store(owed - kept, Ordering::SeqCst);
            self.permits.add_permits(more);
        } else if wanted < current.allowed {
            let fewer = current.allowed - wanted;
            let forgotten = self.permits.forget_permits(fewer);
            self.surplus.fetch_add(fewer - forgotten, Ordering::SeqCst);
        }
        current.allowed = wanted;
    }

    /// Starts check thread number `number`.
    fn start_thread(&self, number: usize) {
        let received = Arc::clone(&self.received);
        let spawned = std::thread::Builder::new()
            .name(format!("password-check-{number}"))
            .spawn(move || {
                loop {
                    let job = received
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv();
                    match job {
                        // A panicking check fails its request (its answer is dropped), not
                        // the thread.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a password-check thread");
        }
    }
}

/// A place among the checks running at once, held until dropped (also when the request is
/// abandoned): then given back, or taken out of use if the concurrency was lowered meanwhile.
struct Place<'a> {
    /// Whose place.
    checks: &'a PasswordChecks,
    /// The semaphore's permit; taken in `drop`.
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let owed = self
            .checks
            .surplus
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |owed| {
                owed.checked_sub(1)
            });
        if let (Ok(_), Some(permit)) = (owed, self.permit.take()) {
            permit.forget();
        }
    }
}

impl PasswordChecks {
    /// The result of the check identified by `key`, running `check` only if no identical
    /// check is under way (else waiting for that one's result). Errors are not shared: each
    /// waiter whose check could not run gets its own.
    pub(super) async fn coalesced<F>(&self, key: [u8; 32], check: F) -> Result<bool, CheckError>
    where
        F: std::future::Future<Output = Result<bool, CheckError>>,
    {
        let cell = Arc::clone(
            self.under_way
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(key)
                .or_default(),
        );
        // The entry leaves when this request is done with it, however it ends (a result, an
        // error such as a full queue, or the client gone and this future dropped): the map
        // holds only checks under way. A request arriving after that starts a check of its own.
        let _leave = UnderWayEntry {
            checks: self,
            key,
            cell: Arc::clone(&cell),
        };
        cell.get_or_try_init(|| check).await.copied()
    }

    /// Runs `check` (argon2) on a check thread once a place is free; `Busy` when the queue
    /// is full.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CheckError> {
        use std::sync::atomic::Ordering;
        let permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue.load(Ordering::SeqCst)
                {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(CheckError::Busy);
                }
                let waiting = &crate::metrics::metrics().password_checks_waiting;
                waiting.inc();
                let permit = self.permits.acquire().await;
                waiting.dec();
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                permit.expect("the semaphore is never closed")
            }
        };
        let _place = Place {
            checks: self,
            permit: Some(permit),
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: PasswordJob = Box::new(move || {
            let _ = done.send(check());
        });
        if self.jobs.send(job).is_err() {
            tracing::error!("no password-check thread is running");
            return Err(CheckError::Broken);
        }
        result.await.map_err(|_| {
            tracing::error!("a password check failed");
            CheckError::Broken
        })
    }
}

#[cfg(test)]
mod test {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn identical_checks_share_one_run_and_leave_nothing_behind() {
        let checks = PasswordChecks::new(1, 0);
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let check = || async {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(true)
        };
        let (first, second) = tokio::join!(
            checks.coalesced([1; 32], check()),
            checks.coalesced([1; 32], check())
        );
        assert_eq!((first, second), (Ok(true), Ok(true)));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A failed check (a full queue) and an abandoned one leave no entry either.
        assert_eq!(
            checks
                .coalesced([2; 32], async { Err(CheckError::Busy) })
                .await,
            Err(CheckError::Busy)
        );
        let abandoned = tokio::time::timeout(
            Duration::from_millis(5),
            checks.coalesced([3; 32], std::future::pending()),
        )
        .await;
        assert!(abandoned.is_err());
        assert!(checks.under_way.lock().unwrap().is_empty());
    }

    /// Runs `count` checks at once on `checks`, each holding its thread for 80 ms; returns
    /// the most that ran together and how many were refused `Busy`.
    async fn burst(checks: &Arc<PasswordChecks>, count: usize) -> (usize, usize) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..count {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            let checks = Arc::clone(checks);
            runs.spawn(async move {
                checks
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(80));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            });
        }
        let mut busy = 0;
        while let Some(result) = runs.join_next().await {
            if result.unwrap() == Err(CheckError::Busy) {
                busy += 1;
            }
        }
        (most.load(Ordering::SeqCst), busy)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_raises_and_lowers_the_checks_at_once_and_the_queue() {
        let checks = Arc::new(PasswordChecks::new(1, 10));
        assert_eq!(burst(&checks, 4).await, (1, 0));
        checks.resize(3, 10);
        assert_eq!(burst(&checks, 6).await, (3, 0));
        // Lowered while checks run: none is cut short, and the places are taken out of use
        // as they come back.
        let lowering = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            checks.resize(1, 10);
        };
        let (during, ()) = tokio::join!(burst(&checks, 3), lowering);
        assert_eq!(during, (3, 0));
        assert_eq!(burst(&checks, 4).await, (1, 0));
        // Raised again: places owed back are kept instead of added on top.
        checks.resize(2, 10);
        assert_eq!(burst(&checks, 4).await, (2, 0));
        // The queue: one running, one waiting, the rest refused.
        checks.resize(1, 1);
        assert_eq!(burst(&checks, 4).await, (1, 2));
        assert_eq!(checks.permits.available_permits(), 1);
    }
}
