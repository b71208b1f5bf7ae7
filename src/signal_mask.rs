//! Which threads take signals, in one place.
//!
//! In a Ruby process, Ruby owns the signal handlers and expects to run them
//! for its own threads: a SIGINT delivered to one of our threads would run
//! Ruby's handler there, and one delivered while our thread waits on a
//! socket makes that wait fail with EINTR. So:
//!
//! - Threads this crate creates in a Ruby process (the server's runtime,
//!   the publisher's runtime) block the asynchronous signals from their
//!   first instruction on ([`block_async_signals`], called at the start of
//!   each thread). The kernel then delivers those signals to a Ruby thread.
//! - Ruby's own threads are never masked: a call that blocks on one waits
//!   on a condition variable (restarted after a handler, never EINTR) and
//!   can be interrupted through Ruby's unblock function.
//! - Synchronous signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS)
//!   and SIGABRT are never blocked anywhere: blocking them hides crashes
//!   (the kernel kills the process without the handler that reports them).
//! - The plain binary blocks nothing: tokio's handlers stop it on SIGTERM
//!   and SIGINT, whichever thread takes them.

/// Signals that report a fault of the thread that receives them.
const SYNCHRONOUS: [libc::c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGABRT,
];

/// Blocks every asynchronous signal on the calling thread, for good: to be
/// called first thing in a thread that must never run a signal handler.
pub fn block_async_signals() {
    // SAFETY: plain calls on a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for signal in SYNCHRONOUS {
            libc::sigdelset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `signal` is blocked on the calling thread.
    fn is_blocked(signal: libc::c_int) -> bool {
        // SAFETY: reads the calling thread's mask into a local sigset_t.
        unsafe {
            let mut current: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current);
            libc::sigismember(&current, signal) == 1
        }
    }

    #[test]
    fn blocks_the_asynchronous_signals_only() {
        let (terminated, interrupted, faulted, aborted) = std::thread::spawn(|| {
            block_async_signals();
            (
                is_blocked(libc::SIGTERM),
                is_blocked(libc::SIGINT),
                is_blocked(libc::SIGSEGV),
                is_blocked(libc::SIGABRT),
            )
        })
        .join()
        .unwrap();
        assert!(terminated && interrupted);
        assert!(!faulted && !aborted, "faults and aborts are never blocked");
        assert!(!is_blocked(libc::SIGTERM), "only the thread that asked");
    }
}
