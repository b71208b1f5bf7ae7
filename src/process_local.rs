//! A value of this process only: a forked child never sees its parent's.
//!
//! `fork` copies memory as it is, with whatever another thread was doing:
//! a mutex it held stays locked in the child forever, a runtime's threads
//! do not exist there, a socket is shared with the parent. So state that
//! threads or sockets live in is kept here, with the pid that made it. A
//! child that finds another pid makes its own, and leaves the parent's
//! untouched (leaked: dropping it would wait on threads that are not
//! there, or lock what may be locked). It is checked on every access,
//! without a lock, so it holds whatever the other threads were doing at
//! the fork, and whether or not Ruby's fork hooks ran (`Process.daemon`
//! does not run them).

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

pub struct ProcessLocal<T> {
    current: AtomicPtr<Owned<T>>,
}

struct Owned<T> {
    pid: u32,
    value: T,
}

impl<T> ProcessLocal<T> {
    pub const fn new() -> Self {
        ProcessLocal {
            current: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// This process's value, made by `init` on first use in the process.
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        let pid = std::process::id();
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was made by `Box::into_raw` below and
        // is freed only by `drop`, which takes `&mut self`.
        if let Some(owned) = unsafe { current.as_ref() } {
            if owned.pid == pid {
                return &owned.value;
            }
        }
        let fresh = Box::into_raw(Box::new(Owned { pid, value: init() }));
        match self
            .current
            .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // The parent's value, if any, is left as it is.
            // SAFETY: just made, and now owned by `self`.
            Ok(_) => unsafe { &(*fresh).value },
            Err(other) => {
                // Another thread of this process made one first: use it.
                // SAFETY: `fresh` was never shared; `other` as above.
                unsafe {
                    drop(Box::from_raw(fresh));
                    &(*other).value
                }
            }
        }
    }
}

impl<T> Default for ProcessLocal<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for ProcessLocal<T> {
    fn drop(&mut self) {
        let current = *self.current.get_mut();
        // SAFETY: as in `get_or_init`; only this process's own value is freed.
        if let Some(owned) = unsafe { current.as_ref() } {
            if owned.pid == std::process::id() {
                drop(unsafe { Box::from_raw(current) });
            }
        }
    }
}

// SAFETY: it hands out `&T` to any thread, as a `Sync` container would.
unsafe impl<T: Send + Sync> Sync for ProcessLocal<T> {}
unsafe impl<T: Send> Send for ProcessLocal<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn made_once_per_process() {
        let made = AtomicU32::new(0);
        let local = ProcessLocal::new();
        let first: *const u32 = local.get_or_init(|| made.fetch_add(1, Ordering::SeqCst));
        let again: *const u32 = local.get_or_init(|| made.fetch_add(1, Ordering::SeqCst));
        assert_eq!(first, again);
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_forked_child_makes_its_own() {
        let local = ProcessLocal::new();
        assert_eq!(*local.get_or_init(std::process::id), std::process::id());
        // SAFETY: the child only reads and calls _exit.
        match unsafe { libc::fork() } {
            0 => {
                let value = *local.get_or_init(std::process::id);
                let status = if value == std::process::id() { 0 } else { 1 };
                unsafe { libc::_exit(status) };
            }
            child => {
                let mut status = 0;
                unsafe { libc::waitpid(child, &mut status, 0) };
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
                assert_eq!(
                    *local.get_or_init(|| 0),
                    std::process::id(),
                    "the parent keeps its own"
                );
            }
        }
    }
}
