//! The `cfg(loom)` facade: the refcount protocol is written against these
//! names so the loom models in `tests/loom_*.rs` check the real code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU8, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU8, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex};
