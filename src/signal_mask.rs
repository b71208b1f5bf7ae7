//! Keeping signals away from threads that must not handle them.
//!
//! In a Ruby process, Ruby owns the signal handlers, and they expect to run
//! on Ruby's threads: a signal delivered to one of the server's threads
//! would run Ruby's handler there, and one delivered while a thread waits
//! on a socket makes that wait fail with EINTR. So the server's threads are
//! started with every signal blocked (threads inherit the mask), and a
//! blocking call on a Ruby thread blocks them for its duration: the kernel
//! then delivers them to another thread, or once the call returned.

/// Runs `f` with every signal blocked on this thread, then restores the mask.
pub fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: plain calls on local sigset_t values; the previous mask is
    // restored before returning, also when `f` panics (the guard's drop).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        let _restore = Restore(previous);
        f()
    }
}

struct Restore(libc::sigset_t);

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: restores a mask obtained from pthread_sigmask.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(signal: libc::c_int) -> bool {
        unsafe {
            let mut current: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current);
            libc::sigismember(&current, signal) == 1
        }
    }

    #[test]
    fn blocks_for_the_call_and_for_threads_started_in_it() {
        assert!(!blocked(libc::SIGTERM));
        let child = with_signals_blocked(|| {
            assert!(blocked(libc::SIGTERM) && blocked(libc::SIGINT) && blocked(libc::SIGCHLD));
            std::thread::spawn(|| blocked(libc::SIGTERM))
        });
        assert!(!blocked(libc::SIGTERM), "restored afterwards");
        assert!(
            child.join().unwrap(),
            "inherited by threads started meanwhile"
        );
    }
}
