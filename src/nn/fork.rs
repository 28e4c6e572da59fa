//! Fork-join over persistent helper threads that spin briefly between jobs.
//!
//! Acting and the training recurrence split products that take from a few microseconds to a few
//! hundred over the cores, thousands of times a second. rayon's `join`, called from a thread outside
//! its pool, hands the whole join to a sleeping worker and blocks on a condition variable; measured
//! on the reference machine that cost more than it saved below about 8M multiply-adds (batch-4
//! acting: 1.65 ms split, 1.14 ms on one thread). rayon has no way to keep the caller working on
//! its own part while a warm helper takes the other, so this module does only that: the calling
//! thread runs part 0, each helper picks its part up within a fraction of a microsecond while it
//! spins, and the caller takes back every part a helper has not started, so that a helper the
//! operating system has descheduled never stalls the caller.
//!
//! One caller uses the helpers at a time; a second concurrent caller (tests run in parallel, or a
//! nested call) runs all its parts itself, which gives the same results.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a helper busy-waits for its next part before yielding its core between checks.
const SPIN: Duration = Duration::from_micros(20);
/// How long a helper keeps checking (spinning, then yielding) before it parks. Acting loops post a
/// part every step, so a helper that stays awake this long between steps is picked up at once.
const STAY_AWAKE: Duration = Duration::from_micros(300);
/// At most this many helper threads, whatever the machine.
const MAX_HELPERS: usize = 7;

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const SLEEPING: u8 = 4;

/// A part for a helper: the job and the index of its part.
#[derive(Clone, Copy)]
struct Part {
    job: *const (dyn Fn(usize) + Sync + 'static),
    index: usize,
}

struct Slot {
    state: AtomicU8,
    /// Written only by the caller that holds [`Pool::busy`], while `state` is `IDLE` or `SLEEPING`;
    /// read only by the helper after it moved `state` from `POSTED` to `RUNNING`.
    part: UnsafeCell<Option<Part>>,
    panicked: AtomicBool,
    thread: OnceLock<Thread>,
}

// SAFETY: `part` is handed over through `state` (release on post, acquire on pick-up), so the
// caller and the helper never access it at the same time; the job behind it is `Sync`.
unsafe impl Sync for Slot {}

struct Pool {
    busy: AtomicBool,
    slots: Vec<Slot>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let helpers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .min(MAX_HELPERS);
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            busy: AtomicBool::new(false),
            slots: (0..helpers)
                .map(|_| Slot {
                    state: AtomicU8::new(IDLE),
                    part: UnsafeCell::new(None),
                    panicked: AtomicBool::new(false),
                    thread: OnceLock::new(),
                })
                .collect(),
        }));
        let spawned = pool.slots.iter().enumerate().all(|(i, slot)| {
            std::thread::Builder::new()
                .name(format!("factored-rl-fork-{i}"))
                .spawn(move || helper(slot))
                .is_ok()
        });
        if !spawned {
            // Without every helper the caller runs all parts; hold the pool forever.
            pool.busy.store(true, Ordering::Release);
        }
        pool
    })
}

fn helper(slot: &'static Slot) {
    let _ = slot.thread.set(std::thread::current());
    loop {
        let since = Instant::now();
        loop {
            if slot
                .state
                .compare_exchange(POSTED, RUNNING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
            let waited = since.elapsed();
            if waited < SPIN {
                std::hint::spin_loop();
            } else if waited < STAY_AWAKE {
                std::thread::yield_now();
            } else if slot
                .state
                .compare_exchange(IDLE, SLEEPING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                while slot.state.load(Ordering::Acquire) == SLEEPING {
                    std::thread::park();
                }
            }
        }
        // SAFETY: the caller wrote the part before posting it and does not touch it until DONE;
        // the job it points to lives until then (the caller waits for DONE before returning).
        let part = unsafe { (*slot.part.get()).expect("a posted slot holds a part") };
        let job = unsafe { &*part.job };
        if catch_unwind(AssertUnwindSafe(|| job(part.index))).is_err() {
            slot.panicked.store(true, Ordering::Relaxed);
        }
        slot.state.store(DONE, Ordering::Release);
    }
}

/// The number of threads [`run_parts`] can spread parts over (the caller and the helpers).
pub(crate) fn threads() -> usize {
    pool().slots.len() + 1
}

/// Runs `job(index, part)` once for every element of `parts` (each a disjoint piece of the work,
/// such as mutable slices of one buffer), spread as [`run_parts`] spreads its parts.
pub(crate) fn for_each_part<P: Send>(parts: Vec<P>, job: &(dyn Fn(usize, &mut P) + Sync)) {
    let parts: Vec<std::sync::Mutex<P>> = parts.into_iter().map(std::sync::Mutex::new).collect();
    run_parts(parts.len(), &|index| {
        let mut part = parts[index].lock().unwrap_or_else(|e| e.into_inner());
        job(index, &mut part);
    });
}

/// `job` over every part on the cores, as [`for_each_part`], each part taken by value; returns
/// the parts' results in order.
pub(crate) fn map_parts<P: Send, R: Send>(
    parts: Vec<P>,
    job: &(dyn Fn(usize, P) -> R + Sync),
) -> Vec<R> {
    let mut slots: Vec<(Option<P>, Option<R>)> =
        parts.into_iter().map(|p| (Some(p), None)).collect();
    for_each_part(slots.iter_mut().collect(), &|index, slot| {
        if let Some(part) = slot.0.take() {
            slot.1 = Some(job(index, part));
        }
    });
    slots
        .into_iter()
        .map(|(_, result)| result.expect("for_each_part runs every part"))
        .collect()
}

/// Runs `job(0)`, …, `job(parts − 1)`, each exactly once, spread over the calling thread and the
/// helpers, and returns when all have finished. A panic in any part is resumed on the caller after
/// every part has finished.
pub(crate) fn run_parts(parts: usize, job: &(dyn Fn(usize) + Sync)) {
    let pool = pool();
    if parts <= 1
        || pool.slots.is_empty()
        || pool
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        (0..parts).for_each(job);
        return;
    }
    let helpers = &pool.slots[..(parts - 1).min(pool.slots.len())];
    // SAFETY: only the lifetime is erased; every helper finishes with the job (or never starts it)
    // before this function returns, even when a part panics.
    let erased: *const (dyn Fn(usize) + Sync + 'static) =
        unsafe { std::mem::transmute(job as *const (dyn Fn(usize) + Sync)) };
    for (i, slot) in helpers.iter().enumerate() {
        // SAFETY: this thread holds `busy` and the slot is IDLE or SLEEPING (see `Slot::part`).
        unsafe {
            *slot.part.get() = Some(Part {
                job: erased,
                index: i + 1,
            })
        };
        if slot.state.swap(POSTED, Ordering::AcqRel) == SLEEPING
            && let Some(thread) = slot.thread.get()
        {
            thread.unpark();
        }
    }
    let own = catch_unwind(AssertUnwindSafe(|| {
        job(0);
        (helpers.len() + 1..parts).for_each(job);
    }));
    let mut helper_panicked = false;
    for (i, slot) in helpers.iter().enumerate() {
        if slot
            .state
            .compare_exchange(POSTED, IDLE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            if catch_unwind(AssertUnwindSafe(|| job(i + 1))).is_err() {
                helper_panicked = true;
            }
            continue;
        }
        let since = Instant::now();
        while slot.state.load(Ordering::Acquire) != DONE {
            if since.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        helper_panicked |= slot.panicked.swap(false, Ordering::Relaxed);
        slot.state.store(IDLE, Ordering::Release);
    }
    pool.busy.store(false, Ordering::Release);
    if let Err(payload) = own {
        resume_unwind(payload);
    }
    assert!(!helper_panicked, "a part run on a helper thread panicked");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_part_runs_exactly_once() {
        for parts in [0, 1, 2, 3, 9] {
            let counts: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..200 {
                run_parts(parts, &|p| {
                    counts[p].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 200));
        }
    }

    #[test]
    fn concurrent_callers_and_sleeping_helpers_still_run_every_part() {
        let total = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for caller in 0..3 {
                let total = &total;
                scope.spawn(move || {
                    for round in 0..50 {
                        if (round + caller) % 10 == 0 {
                            // Long enough for the helpers to park.
                            std::thread::sleep(STAY_AWAKE * 3);
                        }
                        run_parts(4, &|p| {
                            total.fetch_add(p + 1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * 50 * (1 + 2 + 3 + 4));
    }

    #[test]
    fn a_panicking_part_reaches_the_caller_and_the_pool_keeps_working() {
        for bad in [0, 1] {
            let result = catch_unwind(|| run_parts(2, &|p| assert_ne!(p, bad, "part {p}")));
            assert!(result.is_err(), "part {bad} panicked silently");
        }
        let ran = AtomicUsize::new(0);
        run_parts(2, &|_| {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(ran.load(Ordering::Relaxed), 2);
    }
}
