//! Synchronisation facade: loom's model-checked types under `cfg(loom)`, std otherwise.
//!
//! Only the state that readers observe concurrently (slot pointers, mark words, the root
//! pointer) and the writer mutex go through this facade. Writer-only bookkeeping (free
//! bits, slot counts, `len`) uses plain std atomics even under loom: it is only touched
//! with the writer mutex held (or read as an advisory figure), so modelling it would only
//! inflate loom's state space without checking anything.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
