//! A persistent pool of worker threads (`std` only): created once, then each parallel loop
//! of a forward pass is one [`Pool::run`], which allocates nothing.
//!
//! Between runs workers spin for up to `SPIN` on an atomic copy of the run generation,
//! then sleep on a `Condvar` (a forward pass is hundreds of runs a few hundred µs apart,
//! and a futex wake-up costs tens of µs on a VM); the caller likewise spins briefly for
//! the workers to finish before it sleeps. A run publishes a task count and a borrowed
//! closure. Each thread has a *home* share of the task indices (the caller the first
//! `tasks / threads`, worker 1 the next, …) and takes them from its own atomic counter
//! first, then takes what is left of the others' (so a worker the OS has not scheduled
//! yet costs nothing: the others take its tasks). Home shares keep the same rows or
//! columns on the same core from one loop to the next, so their cache lines do not move
//! between cores. `run` returns once every worker that joined has finished. Which thread
//! runs which task can still vary, so callers make each task's result independent of that
//! (see `par.rs`).
//!
//! Not a crate (rayon, etc.): `rayon::scope` allocates per spawned job, and the engine's
//! rule is no allocation per inference. This file is the whole mechanism.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a thread spins for the next run (or for the workers to finish) before it
/// sleeps. Bounded, so an idle pool costs at most this much CPU after each run.
const SPIN: Duration = Duration::from_micros(100);

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

/// One thread's task counter, alone in its cache line.
#[repr(align(64))]
struct Counter(AtomicUsize);

/// The closure of the run in progress, with its lifetime erased (see `Pool::run`).
type Job = &'static (dyn Fn(usize) + Sync);

struct State {
    /// The current run's closure and task count; `None` between runs.
    job: Option<(Job, usize)>,
    /// Bumped by every run, so a worker knows a job is new.
    generation: u64,
    /// Workers that took the current job and have not finished with it.
    busy: usize,
    /// A task panicked on a worker during the current run.
    panicked: bool,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Workers wait here for a new generation (or shutdown).
    wake: Condvar,
    /// The caller waits here for `busy` to reach 0.
    idle: Condvar,
    /// Per thread (the caller is 0): the next task index of its home share of the run.
    next: Vec<Counter>,
    /// Workers asleep on `wake` (a run wakes them only when there are some).
    sleeping: AtomicUsize,
    /// `State::generation` and `State::busy`, readable without the lock: what spinning
    /// threads watch (the state under the lock stays the authority).
    generation: AtomicU64,
    busy: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Tasks run outside the lock, and the code under it does not panic: a poisoned lock
        // still holds a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The end of thread `slot`'s home share of `tasks` (it starts where `slot − 1`'s ends).
    fn home_end(&self, slot: usize, tasks: usize) -> usize {
        tasks * (slot + 1) / self.next.len()
    }

    /// Thread `slot` runs its home share of the tasks, then whatever is left of the others'.
    fn drain(&self, slot: usize, job: Job, tasks: usize) {
        let threads = self.next.len();
        for o in (0..threads).map(|i| (slot + i) % threads) {
            let end = self.home_end(o, tasks);
            loop {
                let t = self.next[o].0.fetch_add(1, Ordering::Relaxed);
                if t >= end {
                    break;
                }
                job(t);
            }
        }
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

/// The number of threads [`Pool::new`] should get by default: every core the OS gives this
/// process (`std::thread::available_parallelism`), 1 if unknown.
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
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
    /// `threads − 1` workers, spawned now. `threads` 0 is taken as 1.
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { job: None, generation: 0, busy: 0, panicked: false, shutdown: false }),
            wake: Condvar::new(),
            idle: Condvar::new(),
            next: (0..threads.max(1)).map(|_| Counter(AtomicUsize::new(0))).collect(),
            sleeping: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        });
        let mut pool = Pool { shared, workers: Vec::new(), run_lock: Mutex::new(()) };
        for i in 1..threads.max(1) {
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

    /// Calls `f(t)` once for every `t < tasks`, spread over the pool's threads, and returns
    /// when all calls have returned. Allocates nothing. A panic in a task is re-raised here
    /// once every task has stopped.
    pub fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() || tasks <= 1 {
            (0..tasks).for_each(f);
            return;
        }
        let _one_run = self.run_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let sh = &*self.shared;
        // SAFETY: only the lifetime is changed (same fat-pointer layout). The reference is
        // used by workers only between taking it from `state.job` and decrementing `busy`,
        // both under the lock. Below, this function waits until `busy` is 0 and clears
        // `state.job` under the lock before returning, also when a task panics (the caller's
        // tasks run inside `catch_unwind`), so no worker can reach `f` after `run` returns:
        // `f` outlives every use.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f) };
        {
            let mut st = sh.lock();
            // Each counter starts at its home share (published by the generation's Release).
            for (slot, c) in sh.next.iter().enumerate() {
                c.0.store(if slot == 0 { 0 } else { sh.home_end(slot - 1, tasks) }, Ordering::Relaxed);
            }
            st.job = Some((job, tasks));
            st.generation = st.generation.wrapping_add(1);
            sh.generation.store(st.generation, Ordering::Release);
            st.panicked = false;
        }
        // Spinning workers see the new generation by themselves; only sleepers need the
        // (system call of a) wake-up. A worker counts itself asleep under the lock, which
        // this run held while publishing, so none can be missed.
        if sh.sleeping.load(Ordering::Acquire) > 0 {
            sh.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| sh.drain(0, job, tasks)));
        // Workers that joined are usually about to finish: wait for them awake first.
        spin_until(|| sh.busy.load(Ordering::Acquire) == 0);
        let worker_panicked = {
            let mut st = sh.lock();
            while st.busy > 0 {
                st = sh.idle.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            st.job = None;
            st.panicked
        };
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if worker_panicked {
            panic!("a task of a parallel loop panicked on a worker thread");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            // A worker only ends by returning (task panics are caught).
            let _ = w.join();
        }
    }
}

fn worker(sh: &Shared, slot: usize) {
    let mut seen = 0u64;
    loop {
        let (job, tasks) = {
            let mut st = sh.lock();
            loop {
                if st.shutdown {
                    return;
                }
                if st.generation != seen {
                    seen = st.generation;
                    // `None`: that run already finished without this worker.
                    if let Some(j) = st.job {
                        st.busy += 1;
                        sh.busy.store(st.busy, Ordering::Release);
                        break j;
                    }
                }
                // Spin (lock released) for the next run; sleep if none comes soon.
                drop(st);
                let woke = spin_until(|| sh.generation.load(Ordering::Acquire) != seen);
                st = sh.lock();
                if !woke && st.generation == seen && !st.shutdown {
                    sh.sleeping.fetch_add(1, Ordering::AcqRel);
                    st = sh.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                    sh.sleeping.fetch_sub(1, Ordering::AcqRel);
                }
            }
        };
        let ok = catch_unwind(AssertUnwindSafe(|| sh.drain(slot, job, tasks))).is_ok();
        let mut st = sh.lock();
        st.panicked |= !ok;
        st.busy -= 1;
        sh.busy.store(st.busy, Ordering::Release);
        if st.busy == 0 {
            sh.idle.notify_one();
        }
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
