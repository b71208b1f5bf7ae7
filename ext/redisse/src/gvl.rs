//! Releasing the GVL around a blocking call, the one way this extension does it.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{Error, Ruby};

struct Call<W, R, U> {
    work: Option<W>,
    result: Option<std::thread::Result<R>>,
    unblock: U,
}

/// Runs `work` without the GVL, so other Ruby threads run meanwhile.
/// `unblock` is what Ruby calls, from another thread, to interrupt the wait
/// (Ctrl-C, `Thread#kill`): it must make `work` return soon. A panic in
/// either becomes a Ruby exception instead of unwinding into Ruby's C frames.
pub fn without_gvl<W, R, U>(ruby: &Ruby, work: W, unblock: U) -> Result<R, Error>
where
    W: FnOnce() -> R,
    U: Fn() + Sync,
{
    let mut call = Call {
        work: Some(work),
        result: None,
        unblock,
    };
    let data = &mut call as *mut Call<W, R, U> as *mut c_void;
    // SAFETY: `call` outlives the call; Ruby runs `run` once on this thread
    // and `interrupt` only while `run` is running.
    unsafe {
        rb_sys::rb_thread_call_without_gvl(
            Some(run::<W, R, U>),
            data,
            Some(interrupt::<W, R, U>),
            data,
        );
    }
    match call.result {
        Some(Ok(result)) => Ok(result),
        Some(Err(panic)) => Err(Error::new(
            ruby.exception_runtime_error(),
            format!("redisse panicked: {}", panic_message(&panic)),
        )),
        None => Err(Error::new(
            ruby.exception_runtime_error(),
            "redisse: blocking call did not run",
        )),
    }
}

unsafe extern "C" fn run<W: FnOnce() -> R, R, U>(data: *mut c_void) -> *mut c_void {
    let call = &mut *(data as *mut Call<W, R, U>);
    if let Some(work) = call.work.take() {
        call.result = Some(catch_unwind(AssertUnwindSafe(work)));
    }
    std::ptr::null_mut()
}

unsafe extern "C" fn interrupt<W, R, U: Fn()>(data: *mut c_void) {
    // Only the shared field is read: `run` holds the rest.
    let unblock = &(*(data as *const Call<W, R, U>)).unblock;
    let _ = catch_unwind(AssertUnwindSafe(unblock));
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
