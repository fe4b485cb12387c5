//! Synchronization facade: loom types under `cfg(loom)`, std types otherwise.
//!
//! Everything that takes part in the bit/summary/publication protocol goes
//! through this module so the loom models in `tests/loom_info.rs` see every
//! access. The fault-injection counter is deliberately *not* routed here: it
//! is test plumbing, not protocol.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicPtr, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicPtr, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
