//! Releasing the GVL around a blocking call, the one way this extension
//! does it (see doc/native-interface.md).
//!
//! `rb_nogvl` with `RB_NOGVL_INTR_FAIL`: Ruby never checks for interrupts
//! inside it, so `Thread#kill`, `Thread#raise`, `Timeout` or a signal can
//! never unwind through Rust frames. An interrupt instead calls `unblock`,
//! which makes `work` return soon, and the call returns normally; the
//! caller hands "interrupted" back to Ruby as a value, and the interrupt
//! is taken in Ruby, where the exception (if any) starts.
//!
//! And `RB_NOGVL_UBF_ASYNC_SAFE`: every `unblock` here is safe in a signal
//! handler (an atomic add and a futex wake). Without it, on the main
//! thread of a process with no other Ruby thread, Ruby starts a helper
//! thread to call `unblock`, and joins it on the way out: that join takes
//! the pending interrupt, and raises through the Rust frames after all.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{Error, Ruby};

/// How a call without the GVL went.
pub enum Released<R> {
    Ran(R),
    /// An interrupt was pending: `work` did not run at all.
    NotRun,
}

/// What `run` reads and writes: only the thread that called `without_gvl`
/// and, while it is released, the one running `work` touch it.
struct Work<W, R> {
    work: Option<W>,
    result: Option<std::thread::Result<R>>,
}

/// Runs `work` without the GVL, so other Ruby threads run meanwhile.
/// `unblock` is what Ruby calls, from another thread, to interrupt the wait
/// (Ctrl-C, `Thread#kill`, `Timeout`), or from a signal handler: it must
/// make `work` return soon, and be async-signal-safe (no lock, no
/// allocation). It is only ever read, through its own pointer, never
/// through `Work`'s. A panic in either becomes a Ruby exception instead of
/// unwinding into Ruby's C frames.
pub fn without_gvl<W, R, U>(ruby: &Ruby, work: W, unblock: U) -> Result<Released<R>, Error>
where
    W: FnOnce() -> R,
    U: Fn() + Sync,
{
    let mut state = Work {
        work: Some(work),
        result: None,
    };
    let work_data = &mut state as *mut Work<W, R> as *mut c_void;
    let unblock_data = &unblock as *const U as *mut c_void;
    // SAFETY: both outlive the call; Ruby runs `run` at most once, on this
    // thread, and `interrupt` only while the GVL is released for it.
    unsafe {
        rb_sys::rb_nogvl(
            Some(run::<W, R>),
            work_data,
            Some(interrupt::<U>),
            unblock_data,
            (rb_sys::RB_NOGVL_INTR_FAIL | rb_sys::RB_NOGVL_UBF_ASYNC_SAFE) as i32,
        );
    }
    match state.result {
        Some(Ok(result)) => Ok(Released::Ran(result)),
        Some(Err(panic)) => Err(Error::new(
            ruby.exception_runtime_error(),
            format!("redisse panicked: {}", panic_message(&panic)),
        )),
        None => Ok(Released::NotRun),
    }
}

unsafe extern "C" fn run<W: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    let state = &mut *(data as *mut Work<W, R>);
    if let Some(work) = state.work.take() {
        state.result = Some(catch_unwind(AssertUnwindSafe(work)));
    }
    std::ptr::null_mut()
}

unsafe extern "C" fn interrupt<U: Fn()>(data: *mut c_void) {
    let unblock = &*(data as *const U);
    let _ = catch_unwind(AssertUnwindSafe(unblock));
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
