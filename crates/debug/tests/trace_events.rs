//! The `tracing` events of `shrink_slab` (the kernel's `mm_shrink_slab_start`
//! and `mm_shrink_slab_end`) carry the right values, in the right order,
//! checked with a hand-written capturing subscriber.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use unishrink_shrinker::trace::TARGET;
use unishrink_shrinker::*;

/// A field value as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
enum V {
    U(u64),
    B(bool),
    S(String),
}

#[derive(Clone, Debug)]
struct Captured {
    message: String,
    level: Level,
    fields: BTreeMap<String, V>,
}

impl Captured {
    fn u(&self, k: &str) -> u64 {
        match self.fields.get(k) {
            Some(V::U(v)) => *v,
            other => panic!("{}: field {k} = {other:?}", self.message),
        }
    }
}

struct Fields(BTreeMap<String, V>, String);

impl Visit for Fields {
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().into(), V::U(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().into(), V::U(v as u64));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().into(), V::B(v));
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().into(), V::S(v.into()));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        if f.name() == "message" {
            self.1 = format!("{v:?}");
        } else {
            self.0.insert(f.name().into(), V::S(format!("{v:?}")));
        }
    }
}

/// Records every event of `TARGET` (and markers pushed by callbacks) in order.
#[derive(Clone)]
struct Capture {
    log: Arc<Mutex<Vec<Captured>>>,
    max: Level,
}

impl Capture {
    fn new(max: Level) -> Self {
        Self {
            log: Arc::default(),
            max,
        }
    }
    fn marker(log: &Mutex<Vec<Captured>>, what: &str) {
        log.lock().unwrap().push(Captured {
            message: what.into(),
            level: Level::ERROR,
            fields: BTreeMap::new(),
        });
    }
    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Subscriber for Capture {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= self.max
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(self.max.into())
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        if e.metadata().target() != TARGET {
            return;
        }
        let mut f = Fields(BTreeMap::new(), String::new());
        e.record(&mut f);
        self.log.lock().unwrap().push(Captured {
            message: f.1,
            level: *e.metadata().level(),
            fields: f.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// A global shrinker with 1_000_000 objects that frees whatever it is asked,
/// pushing a marker into `log` for every `scan_objects` call.
fn big_cache(reg: &Registry, log: Arc<Mutex<Vec<Captured>>>) -> RegisteredShrinker {
    reg.alloc(
        ShrinkerConfig::new("big-cache").seeks(2).batch(128),
        from_fns(
            |_| Count::Objects(1_000_000),
            move |sc| {
                Capture::marker(&log, "scan_objects");
                Scan::Freed(sc.nr_to_scan)
            },
        ),
    )
    .unwrap()
    .register()
}

#[test]
fn start_and_end_events_carry_the_worked_example() {
    let cap = Capture::new(Level::TRACE);
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let s = big_cache(&reg, cap.log.clone());

    tracing::subscriber::with_default(cap.clone(), || {
        // freeable 1_000_000 at priority 12, seeks 2: delta = (1e6 >> 12) * 4 / 2
        // = 488; three batches of 128 = 384 scanned; 104 deferred.
        let r = reg.shrink_slab(&root, 0, DEF_PRIORITY).unwrap();
        assert_eq!(r.freed, 384);
    });
    let log = cap.take();
    let order: Vec<&str> = log.iter().map(|c| c.message.as_str()).collect();
    assert_eq!(
        order,
        [
            "shrink_slab start",
            "scan_objects",
            "scan_objects",
            "scan_objects",
            "shrink_slab"
        ]
    );
    let (start, end) = (&log[0], &log[4]);
    assert_eq!(start.level, Level::TRACE);
    assert_eq!(end.level, Level::TRACE);
    for (k, v) in [
        ("memcg_id", u64::from(root.id().0)),
        ("nid", 0),
        ("priority", 12),
        ("seeks", 2),
        ("batch", 128),
        ("nr_deferred", 0),
        ("freeable", 1_000_000),
        ("delta", 488),
        ("total_scan", 488),
    ] {
        assert_eq!(start.u(k), v, "start.{k}");
    }
    assert_eq!(end.fields["shrinker"], V::S("big-cache".into()));
    assert_eq!(end.u("shrinker_id"), u64::from(s.id().0));
    for (k, v) in [
        ("memcg_id", u64::from(root.id().0)),
        ("nid", 0),
        ("priority", 12),
        ("nr_deferred", 0),
        ("freeable", 1_000_000),
        ("delta", 488),
        ("total_scan", 488),
        ("scanned", 384),
        ("freed", 384),
        ("new_nr_deferred", 104),
    ] {
        assert_eq!(end.u(k), v, "end.{k}");
    }
    assert_eq!(end.fields["stopped"], V::B(false));

    // The second pass starts from the 104 deferred: (104 >> 12) + 488 is still
    // 488, so again 384 are scanned and 104 + 488 - 384 = 208 are deferred.
    tracing::subscriber::with_default(cap.clone(), || {
        reg.shrink_slab(&root, 0, DEF_PRIORITY).unwrap();
    });
    let log = cap.take();
    let start = log
        .iter()
        .find(|c| c.message == "shrink_slab start")
        .unwrap();
    let end = log.iter().find(|c| c.message == "shrink_slab").unwrap();
    assert_eq!(start.u("nr_deferred"), 104);
    assert_eq!(end.u("nr_deferred"), 104);
    assert_eq!(end.u("new_nr_deferred"), 208);
    s.free().unwrap();
}

#[test]
fn stop_and_empty_are_traced() {
    let cap = Capture::new(Level::TRACE);
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let stopping = reg
        .alloc(
            ShrinkerConfig::new("stopper").seeks(0),
            from_fns(|_| Count::Objects(1000), |_| Scan::Stop),
        )
        .unwrap()
        .register();
    let objects = Arc::new(AtomicU64::new(0));
    let o = objects.clone();
    let empty = reg
        .alloc(
            ShrinkerConfig::new("empty").flags(ShrinkerFlags::MEMCG_AWARE),
            from_fns(
                move |_| match o.load(Ordering::Relaxed) {
                    0 => Count::Empty,
                    n => Count::Objects(n),
                },
                |sc| Scan::Freed(sc.nr_to_scan),
            ),
        )
        .unwrap()
        .register();
    empty.set_bit(&root, 0).unwrap();

    tracing::subscriber::with_default(cap.clone(), || {
        reg.shrink_slab(&root, 0, 0).unwrap();
    });
    let log = cap.take();
    let end = log
        .iter()
        .find(|c| c.message == "shrink_slab" && c.fields["shrinker"] == V::S("stopper".into()))
        .unwrap();
    assert_eq!(end.fields["stopped"], V::B(true));
    assert_eq!(end.u("scanned"), 0);
    // seeks 0: half of 1000 is the target; nothing was scanned, all deferred.
    assert_eq!(end.u("total_scan"), 500);
    assert_eq!(end.u("new_nr_deferred"), 500);
    // SHRINK_EMPTY: a memcg-aware shrinker is counted twice (clear, fence,
    // recount), a global one (memcgs compiled out) once with its sticky bit;
    // no start event either way.
    let empties: Vec<_> = log
        .iter()
        .filter(|c| c.message == "shrink_slab empty")
        .collect();
    let counts = if empty.flags().contains(ShrinkerFlags::MEMCG_AWARE) {
        2
    } else {
        1
    };
    assert_eq!(empties.len(), counts);
    assert_eq!(empties[0].u("shrinker_id"), u64::from(empty.id().0));
    assert_eq!(
        log.iter()
            .filter(|c| c.message == "shrink_slab start")
            .count(),
        1,
        "only the stopper started a scan: {log:?}"
    );
    objects.store(1, Ordering::Relaxed);
    stopping.free().unwrap();
    empty.free().unwrap();
}

#[test]
fn a_subscriber_below_trace_sees_nothing() {
    let cap = Capture::new(Level::INFO);
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let s = big_cache(&reg, Arc::default());
    tracing::subscriber::with_default(cap.clone(), || {
        assert_eq!(reg.shrink_slab(&root, 0, DEF_PRIORITY).unwrap().freed, 384);
    });
    assert!(cap.take().is_empty());
    s.free().unwrap();
}
