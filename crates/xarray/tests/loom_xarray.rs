//! Loom models of the reader/writer protocol, run against the real crossbeam-epoch
//! (built with its `loom` feature under `--cfg crossbeam_loom`, so its pin/unpin,
//! epoch advance and deferred-function bags are model-checked too):
//!
//! ```text
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" \
//!     cargo test -p unishrink-xarray --release --test loom_xarray
//! ```
#![cfg(loom)]

use loom::sync::atomic::AtomicBool;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use unishrink_xarray::{pin, XArray};

/// A value whose `Drop` raises a canary shared with the test (held outside the value,
/// so the test never reads freed memory to check it).
struct Value {
    index: u64,
    canary: Arc<AtomicBool>,
}

impl Drop for Value {
    fn drop(&mut self) {
        self.canary.store(true, SeqCst);
    }
}

fn value(index: u64) -> (Arc<Value>, Arc<AtomicBool>) {
    let canary = Arc::new(AtomicBool::new(false));
    (
        Arc::new(Value {
            index,
            canary: canary.clone(),
        }),
        canary,
    )
}

/// Runs deferred functions left in the epoch bags so the model ends with them run
/// (inside the execution, where loom objects may still be touched).
fn drain() {
    for _ in 0..4 {
        pin().flush();
    }
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    // Keeps each model well under a minute on 2 cores; the interesting races need
    // only a couple of preemptions (reader between two loads, writer between unlink
    // and retire).
    b.preemption_bound = Some(2);
    // Scanning a 64-slot node is 64 atomic loads, each a loom branch point.
    b.max_branches = 100_000;
    b
}

/// The reader of models (a) and (a'): loads 64 and, if it is there, checks
/// that the value is not dropped while the guard is held, across another
/// walk through whatever tree shape is current.
fn spawn_reader_of_64(xa: &Arc<XArray<Value>>, c64: &Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let (xa, c64) = (xa.clone(), c64.clone());
    thread::spawn(move || {
        let g = pin();
        if let Some(v) = xa.load(64, &g) {
            // The canary is only set by Drop, which must wait for our guard.
            assert!(!c64.load(SeqCst), "value dropped while a reader holds it");
            assert_eq!(v.index, 64);
            let _ = xa.load(0, &g);
            assert!(!c64.load(SeqCst), "value dropped while a reader holds it");
            assert_eq!(v.index, 64);
        }
        // Whatever the writer did to it, the range of 128's spare leaf is empty.
        assert!(xa.load(130, &g).is_none());
        drop(g);
    })
}

/// The writer of models (a) and (a'): erases 64, after which the tree has
/// collapsed to height 1; then lets every deferred function run.
fn erase_64_then_drain(xa: Arc<XArray<Value>>, reader: thread::JoinHandle<()>) {
    let old = xa.erase(64).expect("present");
    assert_eq!(old.index, 64);
    drop(old);
    assert_eq!(xa.height(), 1);
    reader.join().unwrap();
    drain();
    drop(xa);
    drain();
}

/// (a) A reader loads index 64 while the writer erases it, which empties the leaf,
/// unlinks it and collapses the tree from height 2 to height 1. The reader sees the
/// value or `None`, and the value is not dropped while the reader's guard is held.
#[test]
fn load_vs_erase_shrink() {
    builder().check(|| {
        let xa = Arc::new(XArray::new());
        let (v0, _c0) = value(0);
        let (v64, c64) = value(64);
        xa.store(0, v0).unwrap();
        xa.store(64, v64).unwrap();
        assert_eq!(xa.height(), 2);
        let reader = spawn_reader_of_64(&xa, &c64);
        erase_64_then_drain(xa, reader);
    });
}

/// (a') As (a), with a spare leaf: 128's leaf was emptied before and kept
/// for reuse. Erasing 64 empties another leaf, so the writer unlinks the
/// spare, then 64's leaf, and collapses the tree to height 1, while the
/// reader walks.
#[test]
fn load_vs_erase_releasing_the_spare() {
    builder().check(|| {
        let xa = Arc::new(XArray::new());
        let (v0, _c0) = value(0);
        let (v64, c64) = value(64);
        let (v128, _c128) = value(128);
        xa.store(0, v0).unwrap();
        xa.store(64, v64).unwrap();
        xa.store(128, v128).unwrap();
        drop(xa.erase(128));
        assert_eq!(xa.height(), 2, "128's leaf stays as the spare");
        let reader = spawn_reader_of_64(&xa, &c64);
        erase_64_then_drain(xa, reader);
    });
}

/// (b) A reader iterates from 0 while the writer stores at 4096, growing the tree
/// from height 1 to height 3. The reader must see both pre-existing entries, in
/// order, untorn, and nothing but known entries.
#[test]
fn iter_vs_grow() {
    builder().check(|| {
        let xa = Arc::new(XArray::new());
        let (v0, _c0) = value(0);
        let (v1, _c1) = value(1);
        let (vbig, _cbig) = value(4096);
        xa.store(0, v0).unwrap();
        xa.store(1, v1).unwrap();

        let reader = {
            let xa = xa.clone();
            thread::spawn(move || {
                let g = pin();
                let seen: Vec<(u64, u64)> = xa.iter(0, &g).map(|(i, v)| (i, v.index)).collect();
                let idx: Vec<u64> = seen.iter().map(|e| e.0).collect();
                assert!(idx == [0, 1] || idx == [0, 1, 4096], "saw {idx:?}");
                for (i, vi) in seen {
                    assert_eq!(i, vi, "torn entry");
                }
                // A point lookup of the new index sees it fully or not at all.
                if let Some(v) = xa.load(4096, &g) {
                    assert_eq!(v.index, 4096);
                }
            })
        };

        assert!(xa.store(4096, vbig).unwrap().is_none());
        assert_eq!(xa.height(), 3);
        reader.join().unwrap();
        drop(xa);
        drain();
    });
}

/// A value whose payload loom watches: a read racing a write is a model failure.
struct Payload(loom::cell::UnsafeCell<u64>);

// SAFETY: every access goes through loom's checked cell; the model asserts
// that the protocol orders them.
unsafe impl Sync for Payload {}

/// (c) The shrinker registry's shell reuse: a writer `take`s the entry back
/// with no pin, drops the tree's reference at once (`into_arc`) and keeps its
/// own; it reuses (writes) the value only after a flag set by a function it
/// deferred after the unlink. A reader that loaded the entry before the unlink
/// reads it while pinned. Loom must find no interleaving where the reuse write
/// races that read.
#[test]
fn take_then_reuse_after_a_deferred_flag() {
    builder().check(|| {
        let xa = Arc::new(XArray::new());
        let mine = Arc::new(Payload(loom::cell::UnsafeCell::new(7)));
        xa.store(5, mine.clone()).unwrap();

        let reader = {
            let xa = xa.clone();
            thread::spawn(move || {
                let g = pin();
                if let Some(p) = xa.load(5, &g) {
                    // SAFETY: loom checks this read against the reuse below.
                    let v = p.0.with(|v| unsafe { *v });
                    assert_eq!(v, 7, "read the reused value while pinned");
                }
            })
        };

        let mut w = xa.lock();
        let unlinked = w.take(5).expect("present");
        drop(w);
        // SAFETY: `mine` is the other reference, and it is written to only
        // after the deferred flag below was set.
        let (tree_ref, nodes) = unsafe { unlinked.into_arc() };
        drop(tree_ref);
        let flag = Arc::new(AtomicBool::new(false));
        {
            let g = pin();
            nodes.defer(&g);
            let set = flag.clone();
            g.defer(move || set.store(true, std::sync::atomic::Ordering::Release));
            g.flush();
        }
        // Wait for the grace period the way `alloc` does: look, and if not
        // yet, let the collector advance.
        loop {
            if flag.load(std::sync::atomic::Ordering::Acquire) {
                // SAFETY: loom checks this write against the reader's read.
                mine.0.with_mut(|v| unsafe { *v = 8 });
                break;
            }
            pin().flush();
            thread::yield_now();
        }
        reader.join().unwrap();
        drop(xa);
        drain();
    });
}
