//! A doubly linked list with lock-free readers (`list_add_tail_rcu` /
//! `list_del_rcu` / `list_for_each_entry_rcu`), writers serialized by the
//! caller's writer lock.
//!
//! Readers only follow `next` pointers. Unlinking a node leaves its own `next`
//! intact, so a reader standing on it can continue; the node must only be
//! freed (with [`free_node`]) after every reader that may hold it is gone — an
//! epoch grace period for `split`, `synchronize_srcu` for `srcu`. The list
//! does not free unlinked nodes itself; dropping the list frees the linked ones.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use parking_lot::Mutex;

/// A list node.
pub(crate) struct Node<T> {
    pub(crate) val: T,
    next: AtomicPtr<Node<T>>,
    /// Writer-side only (read and written under `RcuList::tail`'s lock).
    prev: AtomicPtr<Node<T>>,
}

impl<T> Node<T> {
    pub(crate) fn alloc(val: T) -> *mut Node<T> {
        Box::into_raw(Box::new(Node {
            val,
            next: AtomicPtr::default(),
            prev: AtomicPtr::default(),
        }))
    }

    /// The successor at the time of the load (null at the end).
    pub(crate) fn next(&self) -> *mut Node<T> {
        self.next.load(Ordering::Acquire)
    }
}

/// Free a node returned by [`Node::alloc`].
///
/// # Safety
/// `node` came from `Node::alloc`, is not linked in any list, is freed once,
/// and no reader can still reach it (grace period elapsed).
pub(crate) unsafe fn free_node<T>(node: *mut Node<T>) {
    // SAFETY: guaranteed by the caller (see above).
    drop(unsafe { Box::from_raw(node) });
}

pub(crate) struct RcuList<T> {
    head: AtomicPtr<Node<T>>,
    tail: Mutex<*mut Node<T>>,
}

// SAFETY: the raw pointers are owned nodes holding `T`; sharing the list
// shares `&T` across threads (needs `T: Sync`) and moves `T` out on drop
// (needs `T: Send`). Checked by the baselines' concurrent tests.
unsafe impl<T: Send + Sync> Send for RcuList<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for RcuList<T> {}

impl<T> RcuList<T> {
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicPtr::default(),
            tail: Mutex::new(ptr::null_mut()),
        }
    }

    /// First node (null if empty). Dereferencing needs a read-side section.
    pub(crate) fn first(&self) -> *mut Node<T> {
        self.head.load(Ordering::Acquire)
    }

    /// Append a node made by [`Node::alloc`]; the list owns it until unlinked.
    ///
    /// # Safety
    /// `node` came from `Node::alloc` and is in no list.
    pub(crate) unsafe fn push_back(&self, node: *mut Node<T>) {
        let mut tail = self.tail.lock();
        // SAFETY: the caller hands us an unlinked live node; `*tail` is a
        // linked node (only unlinked under this lock), so it is alive.
        unsafe {
            (*node).next.store(ptr::null_mut(), Ordering::Relaxed);
            (*node).prev.store(*tail, Ordering::Relaxed);
            if tail.is_null() {
                self.head.store(node, Ordering::Release);
            } else {
                (**tail).next.store(node, Ordering::Release);
            }
        }
        *tail = node;
    }

    /// Unlink `node`; readers on it can still move on. The caller frees it later.
    ///
    /// # Safety
    /// `node` is currently linked in this list.
    pub(crate) unsafe fn unlink(&self, node: *mut Node<T>) {
        let mut tail = self.tail.lock();
        // SAFETY: `node` is linked (caller), and so are its neighbours, which
        // are only unlinked under this lock: all three are alive.
        unsafe {
            let prev = (*node).prev.load(Ordering::Relaxed);
            let next = (*node).next.load(Ordering::Relaxed);
            if prev.is_null() {
                self.head.store(next, Ordering::Release);
            } else {
                (*prev).next.store(next, Ordering::Release);
            }
            if next.is_null() {
                *tail = prev;
            } else {
                (*next).prev.store(prev, Ordering::Relaxed);
            }
        }
    }
}

impl<T> Drop for RcuList<T> {
    fn drop(&mut self) {
        let mut p = *self.head.get_mut();
        while !p.is_null() {
            // SAFETY: `&mut self`: no reader or writer left; linked nodes are
            // owned by the list and freed exactly once here.
            unsafe {
                let next = (*p).next.load(Ordering::Relaxed);
                free_node(p);
                p = next;
            }
        }
    }
}
