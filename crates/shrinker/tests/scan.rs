//! `do_shrink_slab` against worked examples computed by hand from the
//! kernel's formulas (DESIGN.md §1):
//!   delta      = (freeable >> priority) * 4 / seeks   (seeks 0: freeable / 2)
//!   total_scan = min((nr_deferred >> priority) + delta, 2 * freeable)
//!   loop while total_scan >= batch || total_scan >= freeable
//!   deferred'  = min(max(nr_deferred + delta - scanned, 0), 2 * freeable)

use std::cell::Cell;
use std::sync::Mutex;

use unishrink_shrinker::*;

/// A callee that records `nr_to_scan` of each call.
struct Recorder {
    freeable: Count,
    calls: Mutex<Vec<u64>>,
    /// Return SHRINK_STOP on this call (1-based).
    stop_at: Option<usize>,
    /// Panic on this call (1-based).
    panic_at: Option<usize>,
    /// Rewrites `nr_scanned` from `nr_to_scan`.
    scanned: fn(u64) -> u64,
}

impl Recorder {
    fn new(freeable: u64) -> Self {
        Self {
            freeable: Count::Objects(freeable),
            calls: Mutex::default(),
            stop_at: None,
            panic_at: None,
            scanned: |n| n,
        }
    }
    fn calls(&self) -> Vec<u64> {
        self.calls.lock().unwrap().clone()
    }
}

impl Shrink for Recorder {
    fn count_objects(&self, _sc: &ShrinkControl<'_>) -> Count {
        self.freeable
    }
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> Scan {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(sc.nr_to_scan);
            calls.len()
        };
        assert_eq!(
            sc.nr_scanned, sc.nr_to_scan,
            "nr_scanned preset to nr_to_scan"
        );
        if self.panic_at == Some(n) {
            panic!("injected panic in scan");
        }
        if self.stop_at == Some(n) {
            return Scan::Stop;
        }
        sc.nr_scanned = (self.scanned)(sc.nr_to_scan);
        Scan::Freed(sc.nr_to_scan)
    }
}

fn run(r: &Recorder, seeks: u32, batch: u64, priority: u32, deferred: u64) -> (ScanOutcome, u64) {
    let tree = MemcgTree::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = tree.online_root().unwrap();
    let mut sc = ShrinkControl {
        memcg: &root,
        nid: 0,
        nr_to_scan: 0,
        nr_scanned: 0,
    };
    let cell = Cell::new(deferred);
    let out = do_shrink_slab(r, ScanParams { seeks, batch }, &mut sc, priority, &cell);
    (out, cell.get())
}

fn done(out: ScanOutcome) -> ScanTrace {
    match out {
        ScanOutcome::Done(t) => t,
        other => panic!("expected Done, got {other:?}"),
    }
}

#[test]
fn priority_12_small_cache_scans_nothing() {
    // delta = (1000 >> 12) * 4 / 2 = 0; total 0 < 128 and < 1000.
    let r = Recorder::new(1000);
    let (out, deferred) = run(&r, 2, 128, 12, 0);
    let t = done(out);
    assert_eq!((t.delta, t.total_scan, t.scanned, t.freed), (0, 0, 0, 0));
    assert!(r.calls().is_empty());
    assert_eq!(deferred, 0);
}

#[test]
fn priority_12_large_cache_scans_whole_batches_and_defers_the_rest() {
    // delta = (1_000_000 >> 12) * 4 / 2 = 244 * 2 = 488; 3 batches of 128 = 384;
    // 104 left over is deferred.
    let r = Recorder::new(1_000_000);
    let (out, deferred) = run(&r, 2, 128, 12, 0);
    let t = done(out);
    assert_eq!((t.delta, t.total_scan), (488, 488));
    assert_eq!(r.calls(), vec![128, 128, 128]);
    assert_eq!((t.scanned, t.freed), (384, 384));
    assert_eq!(deferred, 104);
    assert_eq!(t.new_nr_deferred, 104);
}

#[test]
fn priority_0_batch_larger_than_freeable_still_scans_everything() {
    // freeable 50: delta = 50 * 4 / 2 = 100 = cap (2 * 50). 100 < 128 but
    // 100 >= 50, so one call of 100: the "scan small caches too" rule.
    let r = Recorder::new(50);
    let (out, deferred) = run(&r, 2, 128, 0, 0);
    let t = done(out);
    assert_eq!((t.delta, t.total_scan), (100, 100));
    assert_eq!(r.calls(), vec![100]);
    assert_eq!(deferred, 0);
}

#[test]
fn priority_0_batch_smaller_than_freeable() {
    // freeable 100, batch 32: delta = 200 = cap; calls 32 × 6 = 192, then 8 < 32
    // and 8 < 100: stop. deferred = 200 - 192 = 8.
    let r = Recorder::new(100);
    let (out, deferred) = run(&r, 2, 32, 0, 0);
    let t = done(out);
    assert_eq!(r.calls(), vec![32; 6]);
    assert_eq!(t.scanned, 192);
    assert_eq!(deferred, 8);
}

#[test]
fn seeks_zero_targets_half_of_freeable() {
    let r = Recorder::new(1000);
    let (out, deferred) = run(&r, 0, 128, 12, 0);
    let t = done(out);
    assert_eq!(t.delta, 500);
    assert_eq!(t.scanned, 384);
    assert_eq!(deferred, 116);
}

#[test]
fn deferred_work_is_carried_over() {
    // nr_deferred 4096 at priority 12 adds 4096 >> 12 = 1: total 489; 384
    // scanned; deferred = 4096 + 488 - 384 = 4200.
    let r = Recorder::new(1_000_000);
    let (out, deferred) = run(&r, 2, 128, 12, 4096);
    let t = done(out);
    assert_eq!((t.nr_deferred, t.total_scan), (4096, 489));
    assert_eq!(t.scanned, 384);
    assert_eq!(deferred, 4200);
}

#[test]
fn shrink_stop_mid_way_defers_the_remainder() {
    // freeable 1000, priority 0: delta = 2000 = cap. Stop on the 3rd call:
    // scanned 256; deferred = 2000 - 256 = 1744.
    let mut r = Recorder::new(1000);
    r.stop_at = Some(3);
    let (out, deferred) = run(&r, 2, 128, 0, 0);
    let t = done(out);
    assert!(t.stopped);
    assert_eq!(r.calls(), vec![128, 128, 128]);
    assert_eq!((t.scanned, t.freed), (256, 256));
    assert_eq!(deferred, 1744);
}

#[test]
fn deferred_is_capped_at_twice_freeable() {
    // A huge backlog: total and the new deferred value are capped at 2 * 100.
    let r = Recorder::new(100);
    let (out, deferred) = run(&r, 2, 128, 0, 1_000_000_000);
    let t = done(out);
    assert_eq!(t.total_scan, 200);
    assert_eq!(r.calls(), vec![128]);
    assert_eq!(deferred, 200);
}

#[test]
fn callee_reported_nr_scanned_drives_the_loop() {
    // Each call reports half of nr_to_scan: 488 needs 6 calls to get below 128.
    let mut r = Recorder::new(1_000_000);
    r.scanned = |n| n / 2;
    let (out, deferred) = run(&r, 2, 128, 12, 0);
    let t = done(out);
    assert_eq!(r.calls().len(), 6);
    assert_eq!(t.scanned, 384);
    assert_eq!(deferred, 104);
}

#[test]
fn zero_progress_callee_does_not_hang() {
    let mut r = Recorder::new(1_000_000);
    r.scanned = |_| 0;
    let (out, deferred) = run(&r, 2, 128, 12, 0);
    let t = done(out);
    assert_eq!(r.calls().len(), 1);
    assert_eq!((t.scanned, t.freed), (0, 128));
    assert_eq!(deferred, 488);
}

#[test]
fn absurd_counts_are_clamped_and_saturate() {
    let mut r = Recorder::new(u64::MAX);
    r.stop_at = Some(1);
    let (out, deferred) = run(&r, 1, u64::MAX, 0, u64::MAX);
    let t = done(out);
    assert_eq!(t.freeable, MAX_FREEABLE);
    assert_eq!(t.total_scan, 2 * MAX_FREEABLE);
    assert_eq!(
        deferred,
        2 * MAX_FREEABLE,
        "the backlog is capped at twice the clamped count"
    );
    assert_eq!(scan_delta(u64::MAX, 0, 1), u64::MAX);
    assert_eq!(
        scan_delta(1, 64, 2),
        0,
        "shift past the width is 0, not a panic"
    );
}

#[test]
fn a_lying_count_ends_in_a_bounded_number_of_calls() {
    // Claims u64::MAX objects, frees nothing, reports full scans: the pass
    // ends after 2 * MAX_FREEABLE / batch calls.
    let r = Recorder::new(u64::MAX);
    let batch = 1 << 27;
    let (out, _) = run(&r, 2, batch, 0, 0);
    let t = done(out);
    assert_eq!(r.calls().len() as u64, 2 * MAX_FREEABLE / batch);
    assert_eq!(t.scanned, 2 * MAX_FREEABLE);
}

#[test]
fn empty_touches_nothing() {
    let mut r = Recorder::new(0);
    r.freeable = Count::Empty;
    let (out, deferred) = run(&r, 2, 128, 0, 77);
    assert!(matches!(out, ScanOutcome::Empty));
    assert_eq!(deferred, 77, "SHRINK_EMPTY must not consume deferred work");
}

#[test]
fn zero_count_returns_without_taking_deferred() {
    let r = Recorder::new(0);
    let (out, deferred) = run(&r, 2, 128, 0, 77);
    assert_eq!(done(out).freed, 0);
    assert_eq!(deferred, 77);
}

#[test]
fn panicking_scan_keeps_deferred_work() {
    let mut r = Recorder::new(1_000_000);
    r.panic_at = Some(1);
    let (out, deferred) = run(&r, 2, 128, 12, 0);
    match out {
        ScanOutcome::Panicked(t, payload) => {
            assert_eq!(t.scanned, 0);
            assert_eq!(
                payload.downcast_ref::<&str>(),
                Some(&"injected panic in scan")
            );
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(
        deferred, 488,
        "the whole delta is deferred when nothing was scanned"
    );
}
