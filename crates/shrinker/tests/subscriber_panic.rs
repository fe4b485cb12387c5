//! A panic that is not a callback's — here a tracing subscriber's, raised
//! while the walk holds a shrinker's reference — unwinds out of
//! `shrink_slab`, but leaves the active count balanced: `free` afterwards
//! returns instead of waiting forever for a reference nobody holds.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use unishrink_shrinker::*;

/// Deadlock guard only: converts a hang into a failure. Never a performance bound.
const HANG: Duration = Duration::from_secs(120);

/// Interested in everything; panics on the walk's end-of-scan event.
struct PanickingSubscriber {
    events: AtomicUsize,
}

impl Subscriber for PanickingSubscriber {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        self.events.fetch_add(1, Ordering::SeqCst);
        if event.metadata().target() == "unishrink::shrink_slab"
            && event.metadata().fields().field("scanned").is_some()
        {
            panic!("subscriber failure");
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_panicking_subscriber_leaves_the_refcount_balanced() {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let scans = Arc::new(AtomicUsize::new(0));
    let s2 = scans.clone();
    let handle = reg
        .alloc(
            ShrinkerConfig::new("traced"),
            from_fns(
                |_| Count::Objects(10),
                move |_| {
                    s2.fetch_add(1, Ordering::SeqCst);
                    Scan::Freed(1)
                },
            ),
        )
        .unwrap()
        .register();

    let sub = Arc::new(PanickingSubscriber {
        events: AtomicUsize::new(0),
    });
    let walk = tracing::subscriber::with_default(sub.clone(), || {
        catch_unwind(AssertUnwindSafe(|| reg.shrink_slab(&root, 0, 0)))
    });
    assert!(walk.is_err(), "the subscriber's panic escapes the walk");
    assert!(scans.load(Ordering::SeqCst) > 0, "the callbacks ran");
    assert!(sub.events.load(Ordering::SeqCst) > 0);

    // Without a subscriber the next walk runs normally...
    assert_eq!(reg.shrink_slab(&root, 0, 0).unwrap().visited, 1);
    // ...and free returns: the unwound walk put its reference back.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(handle.free()).unwrap());
    rx.recv_timeout(HANG).unwrap().unwrap();
    assert!(reg.is_empty());
}
