//! A persistent pool of worker threads (`std` only): created once, then each parallel loop
//! of a forward pass is one [`Pool::run`], which allocates nothing.
//!
//! A run's life is one atomic word (`Shared::run`): its generation, whether it is still
//! open to workers, how many threads it uses and how many workers are inside it. Workers
//! join and leave a run with one atomic operation each, without a lock. At 8 tokens a
//! pass is about 170 loops of a few tens of µs each; on a 16-core Xeon, with a pool in
//! which every worker took one mutex to join and again to leave (a contended mutex's
//! waiters sleep in the kernel: each hand-over is a futex wake-up), 16 threads ran that
//! pass in 2.6× the time 4 threads took. A run of `tasks` tasks uses `min(tasks, threads)`
//! threads: the rest do not join it at all (and `par.rs` gives small loops fewer tasks).
//!
//! Between runs workers spin for up to `SPIN` on that word, then sleep on a `Condvar` (a
//! futex wake-up costs tens of µs on a VM); the caller likewise spins briefly for the
//! workers to leave before it sleeps. Each thread in use has a *home* share of the task
//! indices (the caller the first `tasks / used`, worker 1 the next, …) and takes them
//! from its own atomic counter first, then takes what is left of the others' (so a worker
//! the OS has not scheduled yet costs nothing: the others take its tasks). Home shares keep
//! the same rows or columns on the same core from one loop to the next, so their cache
//! lines do not move between cores. `run` returns once every worker that joined has
//! left. Which thread runs which task can still vary, so callers make each task's result
//! independent of that (see `par.rs`).
//!
//! Not a crate (rayon, etc.): `rayon::scope` allocates per spawned job, and the engine's
//! rule is no allocation per inference. This file is the whole mechanism.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a thread spins for the next run (or for the workers to finish) before it
/// sleeps. Bounded, so an idle pool costs at most this much CPU after each run.
const SPIN: Duration = Duration::from_micros(100);

/// The most threads a pool runs (the run word counts them in 16 bits).
const MAX_THREADS: usize = 1024;

/// Spins until `done()` or [`SPIN`] has passed; whether `done()` became true.
fn spin_until(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > SPIN {
            return done();
        }
    }
}

/// The run word: `generation << 33 | OPEN | used << 16 | busy`.
mod word {
    /// Workers inside the run (joined, not yet left).
    pub const BUSY: u64 = 0xffff;
    /// Threads the run uses, the caller included (bits 16..32).
    pub const USED_SHIFT: u32 = 16;
    /// Workers may still join.
    pub const OPEN: u64 = 1 << 32;
    pub const GEN_SHIFT: u32 = 33;

    pub fn generation(w: u64) -> u64 {
        w >> GEN_SHIFT
    }

    pub fn used(w: u64) -> usize {
        ((w >> USED_SHIFT) & 0xffff) as usize
    }

    pub fn busy(w: u64) -> u64 {
        w & BUSY
    }
}

/// One thread's task counter, alone in its cache line.
#[repr(align(64))]
struct Counter(AtomicUsize);

/// The closure of the run in progress, with its lifetime erased (see `Pool::run`).
type Job = &'static (dyn Fn(usize) + Sync);

struct Shared {
    /// The current run (see [`word`]).
    run: AtomicU64,
    /// The current run's closure and task count. Written by the caller only while no run is
    /// open and no worker is inside one; read by workers inside a run. (Readers never meet
    /// a writer, so the lock is one uncontended atomic operation per access.)
    job: RwLock<Option<(Job, usize)>>,
    /// Per thread (the caller is 0): the next task index of its home share of the run.
    next: Vec<Counter>,
    /// A task panicked on a worker during the current run.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// Guards the sleeps on `wake` and `idle` (the run word stays the authority).
    lock: Mutex<()>,
    /// Workers sleep here for a new generation (or shutdown).
    wake: Condvar,
    /// Workers asleep on `wake` (a run wakes them only when there are some).
    sleeping: AtomicUsize,
    /// The caller sleeps here for the last worker to leave.
    idle: Condvar,
    /// The caller is asleep on `idle` (or about to be).
    caller_waits: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ()> {
        // Nothing panics under the lock, and it guards no data.
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The end of thread `slot`'s home share of `tasks` over `used` threads (it starts where
    /// `slot − 1`'s ends).
    fn home_end(slot: usize, tasks: usize, used: usize) -> usize {
        tasks * (slot + 1) / used
    }

    /// Thread `slot` runs its home share of the tasks, then whatever is left of the others'.
    fn drain(&self, slot: usize, job: Job, tasks: usize, used: usize) {
        for o in (0..used).map(|i| (slot + i) % used) {
            let end = Self::home_end(o, tasks, used);
            // A plain load first: at the end of a run every thread looks at every counter,
            // and loads share a cache line where `fetch_add`s would pass it around.
            if o != slot && self.next[o].0.load(Ordering::Relaxed) >= end {
                continue;
            }
            loop {
                let t = self.next[o].0.fetch_add(1, Ordering::Relaxed);
                if t >= end {
                    break;
                }
                job(t);
            }
        }
    }

    /// Enters run `generation` if it is still open: whether this worker is now inside it.
    fn join(&self, generation: u64) -> bool {
        let mut w = self.run.load(Ordering::Relaxed);
        loop {
            if word::generation(w) != generation || w & word::OPEN == 0 {
                return false;
            }
            match self.run.compare_exchange_weak(w, w + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => w = now,
            }
        }
    }

    /// Leaves the run; the last worker out wakes a sleeping caller.
    fn leave(&self) {
        let before = self.run.fetch_sub(1, Ordering::SeqCst);
        // SeqCst against `Pool::wait_idle`: either it sees `busy` 0, or this sees its flag.
        if word::busy(before) == 1 && self.caller_waits.load(Ordering::SeqCst) {
            let _g = self.lock();
            self.idle.notify_one();
        }
    }

    /// The run word once its generation differs from `seen` (spinning, then asleep), or
    /// `None` at shutdown.
    fn next_run(&self, seen: u64) -> Option<u64> {
        // SeqCst against `Pool::run` and `Drop`: either they see `sleeping` and notify under
        // the lock (which this holds from the last check to the wait), or this sees their
        // store.
        let check = || {
            if self.shutdown.load(Ordering::SeqCst) {
                return Some(None);
            }
            let w = self.run.load(Ordering::SeqCst);
            (word::generation(w) != seen).then_some(Some(w))
        };
        // `check()`: `Some` once there is something to do, `Some(None)` being shutdown.
        if spin_until(|| check().is_some()) {
            return check().flatten();
        }
        let mut g = self.lock();
        self.sleeping.fetch_add(1, Ordering::SeqCst);
        let found = loop {
            if let Some(found) = check() {
                break found;
            }
            g = self.wake.wait(g).unwrap_or_else(PoisonError::into_inner);
        };
        self.sleeping.fetch_sub(1, Ordering::SeqCst);
        found
    }
}

/// A fixed set of worker threads plus the calling thread: `threads()` tasks run at once.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises runs from different callers (a `Model` may be shared between threads).
    run_lock: Mutex<()>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.threads())
    }
}

/// The number of threads [`Pool::new`] should get by default: one per physical core this
/// process may run on, the big cores only on a big.LITTLE CPU (see `cores.rs`); 1 if
/// unknown.
///
/// ```
/// let n = albert_engine::threads::available();
/// assert!(n >= 1 && n <= std::thread::available_parallelism().map_or(1, usize::from));
/// ```
pub fn available() -> usize {
    crate::cores::default_threads()
}

/// The pool models get when they are created (`Model::from_bytes`, `Model::open`).
static DEFAULT: Mutex<Option<Arc<Pool>>> = Mutex::new(None);

/// Makes models created from now on run on a new pool of `threads` threads (1: on the
/// calling thread, the initial setting). Models created before keep their pool; a model's
/// pool can also be set directly with `Model::set_pool`. For programs such as the `albert`
/// CLI that choose a thread count once at start-up.
pub fn set_default_threads(threads: usize) -> std::io::Result<()> {
    let pool = if threads > 1 { Some(Arc::new(Pool::new(threads)?)) } else { None };
    *DEFAULT.lock().unwrap_or_else(PoisonError::into_inner) = pool;
    Ok(())
}

/// The pool set by [`set_default_threads`], if any.
pub fn default_pool() -> Option<Arc<Pool>> {
    DEFAULT.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

impl Pool {
    /// A pool running `threads` tasks at once: the caller of [`Pool::run`] and
    /// `threads − 1` workers, spawned now. `threads` 0 is taken as 1, and more than 1024
    /// as 1024.
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let threads = threads.clamp(1, MAX_THREADS);
        let shared = Arc::new(Shared {
            run: AtomicU64::new(0),
            job: RwLock::new(None),
            next: (0..threads).map(|_| Counter(AtomicUsize::new(0))).collect(),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            sleeping: AtomicUsize::new(0),
            idle: Condvar::new(),
            caller_waits: AtomicBool::new(false),
        });
        let mut pool = Pool { shared, workers: Vec::new(), run_lock: Mutex::new(()) };
        for i in 1..threads {
            let shared = Arc::clone(&pool.shared);
            // On an error `pool` drops here, which stops the workers already started.
            let handle = std::thread::Builder::new().name(format!("albert-{i}")).spawn(move || worker(&shared, i))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Tasks that run at once (workers + the caller).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(t)` once for every `t < tasks`, spread over at most `tasks` of the pool's
    /// threads, and returns when all calls have returned. Allocates nothing. A panic in a
    /// task is re-raised here once every task has stopped.
    pub fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() || tasks <= 1 {
            (0..tasks).for_each(f);
            return;
        }
        let _one_run = self.run_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let sh = &*self.shared;
        let used = tasks.min(self.threads());
        // SAFETY: only the lifetime is changed (same fat-pointer layout). Workers use the
        // reference only inside a run (between `join` and `leave`). Below, this function
        // closes the run, waits until no worker is inside it and clears `job` before
        // returning, also when a task panics (the caller's tasks run inside
        // `catch_unwind`), so no worker can reach `f` after `run` returns: `f` outlives
        // every use.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f) };
        // No run is open and no worker is inside one: nobody reads these now.
        *sh.job.write().unwrap_or_else(PoisonError::into_inner) = Some((job, tasks));
        for (slot, c) in sh.next.iter().take(used).enumerate() {
            c.0.store(if slot == 0 { 0 } else { Shared::home_end(slot - 1, tasks, used) }, Ordering::Relaxed);
        }
        sh.panicked.store(false, Ordering::Relaxed);
        // Publish (Release, for the job, counters and flag above): the next generation, open.
        let generation =
            word::generation(sh.run.load(Ordering::Relaxed)).wrapping_add(1) & (u64::MAX >> word::GEN_SHIFT);
        sh.run.store(generation << word::GEN_SHIFT | word::OPEN | (used as u64) << word::USED_SHIFT, Ordering::SeqCst);
        // Spinning workers see the new generation by themselves; only sleepers need the
        // (system call of a) wake-up. See `Shared::next_run` for why none can be missed.
        if sh.sleeping.load(Ordering::SeqCst) > 0 {
            let _g = sh.lock();
            sh.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| sh.drain(0, job, tasks, used)));
        // Close the run: a worker that comes later finds no task left anyway.
        let w = sh.run.fetch_and(!word::OPEN, Ordering::AcqRel);
        if word::busy(w) > 0 {
            self.wait_idle();
        }
        *sh.job.write().unwrap_or_else(PoisonError::into_inner) = None;
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if sh.panicked.load(Ordering::Acquire) {
            panic!("a task of a parallel loop panicked on a worker thread");
        }
    }

    /// Waits until no worker is inside the (closed) run: awake first, as workers that
    /// joined are usually about to finish.
    fn wait_idle(&self) {
        let sh = &*self.shared;
        let idle = || word::busy(sh.run.load(Ordering::Acquire)) == 0;
        if spin_until(idle) {
            return;
        }
        let mut g = sh.lock();
        sh.caller_waits.store(true, Ordering::SeqCst);
        // SeqCst against `Shared::leave`: either the last worker sees the flag and notifies
        // under the lock (held here from the check to the wait), or this sees `busy` 0.
        while word::busy(sh.run.load(Ordering::SeqCst)) > 0 {
            g = sh.idle.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
        sh.caller_waits.store(false, Ordering::SeqCst);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock();
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            // A worker only ends by returning (task panics are caught).
            let _ = w.join();
        }
    }
}

fn worker(sh: &Shared, slot: usize) {
    let mut seen = 0u64;
    while let Some(w) = sh.next_run(seen) {
        seen = word::generation(w);
        // A run with fewer tasks than threads leaves the last workers out; a closed one
        // has no task left.
        if slot >= word::used(w) || !sh.join(seen) {
            continue;
        }
        let job = *sh.job.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((job, tasks)) = job {
            let ok = catch_unwind(AssertUnwindSafe(|| sh.drain(slot, job, tasks, word::used(w)))).is_ok();
            if !ok {
                sh.panicked.store(true, Ordering::Release);
            }
        }
        sh.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Repetitions of the stress loops (Miri runs every step of every thread, slowly).
    const ROUNDS: u64 = if cfg!(miri) { 8 } else { 2000 };

    #[test]
    fn every_task_runs_exactly_once() {
        for threads in [1, 2, 3, 8] {
            let pool = Pool::new(threads).unwrap();
            assert_eq!(pool.threads(), threads);
            for tasks in [0usize, 1, 2, 7, 64, if cfg!(miri) { 100 } else { 1000 }] {
                let hits: Vec<AtomicU64> = (0..tasks).map(|_| AtomicU64::new(0)).collect();
                pool.run(tasks, &|t| {
                    hits[t].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{threads} threads, {tasks} tasks");
            }
        }
    }

    #[test]
    fn many_short_runs_and_borrowed_state() {
        let pool = Pool::new(4).unwrap();
        for round in 0..ROUNDS {
            let local = [round; 16];
            let sum = AtomicU64::new(0);
            pool.run(16, &|t| {
                sum.fetch_add(local[t] + t as u64, Ordering::Relaxed);
            });
            assert_eq!(sum.into_inner(), 16 * round + 120);
        }
    }

    #[test]
    fn a_run_of_few_tasks_leaves_the_last_workers_out() {
        let pool = Pool::new(6).unwrap();
        for round in 0..ROUNDS / 8 {
            for tasks in 2..=8usize {
                // Which worker ran each task (0: the caller). Each task takes a while, so
                // that workers outside the run would have time to take some if they joined.
                let ran = Mutex::new(Vec::new());
                pool.run(tasks, &|_| {
                    let name = std::thread::current().name().map(str::to_owned).unwrap_or_default();
                    ran.lock().unwrap().push(name.strip_prefix("albert-").map_or(0, |i| i.parse().unwrap()));
                    std::thread::sleep(Duration::from_micros(if cfg!(miri) { 1 } else { 20 }));
                });
                let ran: Vec<usize> = ran.into_inner().unwrap();
                assert_eq!(ran.len(), tasks, "round {round}");
                assert!(ran.iter().all(|&w| w < tasks), "{tasks} tasks ran on workers {ran:?}");
            }
        }
    }

    #[test]
    fn workers_that_sleep_between_runs_wake_for_the_next() {
        let pool = Pool::new(3).unwrap();
        for round in 0..if cfg!(miri) { 2 } else { 5 } {
            // Longer than SPIN: the workers go to sleep on the condition variable.
            std::thread::sleep(SPIN * 3);
            let seen = Mutex::new(Vec::new());
            let late = AtomicBool::new(false);
            pool.run(3, &|t| {
                // Task 0 (the caller's home share) waits for the other two to start: only
                // woken workers can start them meanwhile.
                seen.lock().unwrap().push(t);
                let start = Instant::now();
                while t == 0 && seen.lock().unwrap().len() < 3 {
                    if start.elapsed() > Duration::from_secs(10) {
                        late.store(true, Ordering::Relaxed);
                        break;
                    }
                    std::thread::yield_now();
                }
            });
            assert!(!late.into_inner(), "round {round}: the sleeping workers did not wake up");
        }
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_pool_still_works() {
        let pool = Pool::new(3).unwrap();
        for bad in [0usize, 5] {
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.run(8, &|t| {
                    if t == bad {
                        panic!("task {t}");
                    }
                })
            }));
            assert!(r.is_err());
        }
        let n = AtomicU64::new(0);
        pool.run(8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.into_inner(), 8);
    }

    #[test]
    fn runs_from_several_callers_are_serialised() {
        let pool = Arc::new(Pool::new(2).unwrap());
        let callers: Vec<_> = (0..3)
            .map(|c| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS / 10 {
                        let n = AtomicU64::new(0);
                        pool.run(10 + c, &|_| {
                            n.fetch_add(1, Ordering::Relaxed);
                        });
                        assert_eq!(n.into_inner(), 10 + c as u64);
                    }
                })
            })
            .collect();
        callers.into_iter().for_each(|c| c.join().unwrap());
    }
}
