//! A queue that threads outside the async runtime wait on: the Ruby
//! threads that answer channel requests, the Ruby thread waiting for the
//! server to stop, a Ruby thread waiting for its publish. A wait can be
//! interrupted (Ctrl-C, `Thread#kill`) from another thread, or from a
//! signal handler: `interrupt` takes no lock (see doc/native-interface.md).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub struct BlockingQueue<T> {
    state: Mutex<QueueState<T>>,
    changed: Condvar,
    /// Bumped by each interrupt; a waiter that sees it move returns.
    interrupts: AtomicU64,
    /// Items it holds at most; `push` refuses more.
    capacity: usize,
}

struct QueueState<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// How often a waiter looks at the interrupt count by itself: an interrupt
/// takes no lock, so it can land between a waiter's look and its sleep.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, PartialEq, Eq)]
pub enum Popped<T> {
    Item(T),
    /// Woken by `interrupt`: the caller checks why, then may wait again.
    Interrupted,
    /// Closed and empty: nothing more will come.
    Closed,
}

/// Why `push` gave an item back.
#[derive(Debug, PartialEq, Eq)]
pub enum NotQueued<T> {
    Closed(T),
    Full(T),
}

impl<T> Default for BlockingQueue<T> {
    fn default() -> Self {
        Self::bounded(usize::MAX)
    }
}

impl<T> BlockingQueue<T> {
    pub fn bounded(capacity: usize) -> Self {
        BlockingQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                closed: false,
            }),
            changed: Condvar::new(),
            interrupts: AtomicU64::new(0),
            capacity,
        }
    }
}

impl<T> BlockingQueue<T> {
    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an item; gives it back if the queue is closed or full.
    pub fn push(&self, item: T) -> Result<(), NotQueued<T>> {
        self.push_making_room(item, |_| false)
    }

    /// Adds an item; when the queue is full, first drops the items that
    /// are `stale` (nobody waits for their answer any more), so that they
    /// never keep a live one out.
    pub fn push_making_room(
        &self,
        item: T,
        stale: impl Fn(&T) -> bool,
    ) -> Result<(), NotQueued<T>> {
        let mut state = self.lock();
        if state.closed {
            return Err(NotQueued::Closed(item));
        }
        if state.items.len() >= self.capacity {
            state.items.retain(|item| !stale(item));
        }
        if state.items.len() >= self.capacity {
            return Err(NotQueued::Full(item));
        }
        state.items.push_back(item);
        drop(state);
        self.changed.notify_one();
        Ok(())
    }

    /// Waits for an item, the queue's end, or an interrupt.
    pub fn pop(&self) -> Popped<T> {
        let interrupts = self.interrupts.load(Ordering::Acquire);
        let mut state = self.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Popped::Item(item);
            }
            if state.closed {
                return Popped::Closed;
            }
            if self.interrupts.load(Ordering::Acquire) != interrupts {
                return Popped::Interrupted;
            }
            state = self
                .changed
                .wait_timeout(state, INTERRUPT_POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Wakes every waiter (they cannot be told apart, and a waiter woken
    /// for nothing just waits again). Safe in a signal handler: an atomic
    /// add and a futex wake, no lock.
    pub fn interrupt(&self) {
        self.interrupts.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_all();
    }

    /// Ends the queue: items already in it are still popped, then `Closed`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Takes every item left, to answer them when the queue is given up.
    pub fn drain(&self) -> Vec<T> {
        self.lock().items.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn pops_in_order_then_reports_the_end() {
        let q = BlockingQueue::default();
        q.push(1).unwrap();
        q.push(2).unwrap();
        q.close();
        assert_eq!(q.push(3), Err(NotQueued::Closed(3)));
        assert_eq!(q.pop(), Popped::Item(1));
        assert_eq!(q.pop(), Popped::Item(2));
        assert_eq!(q.pop(), Popped::Closed);
    }

    #[test]
    fn a_bounded_queue_refuses_what_does_not_fit() {
        let q = BlockingQueue::bounded(1);
        q.push(1).unwrap();
        assert_eq!(q.push(2), Err(NotQueued::Full(2)));
        assert_eq!(q.pop(), Popped::Item(1));
        q.push(3).unwrap();
    }

    #[test]
    fn a_waiter_is_woken_by_an_item_an_interrupt_or_the_end() {
        let q = Arc::new(BlockingQueue::<u32>::default());
        for wake in [0, 1, 2] {
            let waiter = {
                let q = q.clone();
                std::thread::spawn(move || q.pop())
            };
            // The waiter may not be waiting yet: pushes and closes are
            // seen either way, and an interrupt is repeated until it lands.
            match wake {
                0 => q.push(7).unwrap(),
                1 => {
                    while !waiter.is_finished() {
                        q.interrupt();
                        std::thread::yield_now();
                    }
                }
                _ => q.close(),
            }
            let expected = [Popped::Item(7), Popped::Interrupted, Popped::Closed];
            assert_eq!(
                waiter.join().unwrap(),
                expected.into_iter().nth(wake).unwrap()
            );
        }
    }
}
