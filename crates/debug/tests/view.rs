//! The debug view against hand-computed expectations: listing, the `count`
//! file (rows, columns, zero-skipping, text form), the `scan` file (typed
//! errors, effects on the cache and on the counters), JSON round trips.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use unishrink_debug::*;
use unishrink_shrinker::{
    from_fns, Count, MemcgConfig, MemcgId, RegisteredShrinker, Registry, Scan, ShrinkerConfig,
    ShrinkerFlags, DEF_PRIORITY,
};

/// Objects per (memcg, node), shared with the shrinker's callbacks.
type Objects = Arc<Mutex<HashMap<(MemcgId, usize), u64>>>;

fn cache(
    reg: &Registry,
    name: &str,
    flags: ShrinkerFlags,
    objects: &Objects,
) -> RegisteredShrinker {
    let (c, s) = (objects.clone(), objects.clone());
    reg.alloc(
        ShrinkerConfig::new(name).flags(flags).seeks(0).batch(16),
        from_fns(
            move |sc| match c.lock().unwrap().get(&(sc.memcg.id(), sc.nid)) {
                None | Some(0) => Count::Empty,
                Some(&n) => Count::Objects(n),
            },
            move |sc| {
                let mut m = s.lock().unwrap();
                let have = m.entry((sc.memcg.id(), sc.nid)).or_default();
                let take = (*have).min(sc.nr_to_scan);
                *have -= take;
                Scan::Freed(take)
            },
        ),
    )
    .unwrap()
    .register()
}

#[cfg(feature = "memcg")]
fn setup() -> (
    Registry,
    unishrink_shrinker::Memcg,
    unishrink_shrinker::Memcg,
    unishrink_shrinker::Memcg,
) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 2,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let a = reg.create_memcg(&root).unwrap();
    let b = reg.create_memcg(&root).unwrap();
    (reg, root, a, b)
}

#[test]
fn lists_shrinkers_with_dir_names_flags_and_counters() {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 2,
        ..MemcgConfig::default()
    });
    let root = reg.online_root().unwrap();
    let objects = Objects::default();
    objects.lock().unwrap().insert((root.id(), 0), 100);
    let g = cache(&reg, "global", ShrinkerFlags::NONE, &objects);
    let m = cache(
        &reg,
        "percg",
        ShrinkerFlags::MEMCG_AWARE | ShrinkerFlags::NUMA_AWARE,
        &Objects::default(),
    );
    let view = DebugView::new(reg.clone());
    // seeks 0: half of 100 in batches of 16 → 48 scanned.
    assert_eq!(reg.shrink_slab(&root, 0, DEF_PRIORITY).unwrap().freed, 48);

    let list = view.shrinkers();
    assert_eq!(list.len(), 2);
    let gl = list.iter().find(|e| e.id == g.id().0).unwrap();
    assert_eq!(gl.dir_name, format!("global-{}", g.id().0));
    assert_eq!(gl.flags, FlagsView::default());
    assert_eq!((gl.seeks, gl.batch, gl.registered), (0, 16, true));
    assert_eq!(gl.stats.calls, 1);
    assert_eq!(gl.stats.scanned, 48);
    assert_eq!(gl.stats.freed, 48);
    let ml = view.shrinker(m.id()).unwrap();
    assert_eq!(ml.name, "percg");
    assert!(ml.flags.numa_aware);
    assert_eq!(ml.flags.memcg_aware, cfg!(feature = "memcg"));

    // JSON round trip of the listing.
    let json = serde_json::to_string(&list).unwrap();
    let back: Vec<ShrinkerEntry> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, list);
    assert!(json.contains("\"dir_name\":\"global-"));

    let gone = g.id();
    g.free().unwrap();
    assert_eq!(view.shrinker(gone), Err(DebugError::NoSuchShrinker(gone.0)));
    assert_eq!(view.shrinkers().len(), 1);
    m.free().unwrap();
}

#[cfg(feature = "memcg")]
#[test]
fn count_file_lists_non_zero_memcgs_per_node() {
    let (reg, root, a, b) = setup();
    let objects = Objects::default();
    let numa = cache(
        &reg,
        "numa",
        ShrinkerFlags::MEMCG_AWARE | ShrinkerFlags::NUMA_AWARE,
        &objects,
    );
    let flat = cache(&reg, "flat", ShrinkerFlags::MEMCG_AWARE, &objects);
    let global = cache(&reg, "global", ShrinkerFlags::NONE, &objects);
    {
        let mut o = objects.lock().unwrap();
        o.insert((root.id(), 1), 7);
        o.insert((a.id(), 0), 3);
        o.insert((a.id(), 1), 4);
        // b has nothing: its row is skipped.
        o.insert((b.id(), 0), 0);
    }
    let view = DebugView::new(reg.clone());

    let t = view.count(numa.id()).unwrap();
    assert_eq!(t.nr_nodes, 2);
    assert_eq!(
        t.rows,
        vec![
            CountRow {
                memcg: root.id().0,
                counts: vec![0, 7]
            },
            CountRow {
                memcg: a.id().0,
                counts: vec![3, 4]
            },
        ]
    );
    assert_eq!(
        t.to_string(),
        format!("{} 0 7\n{} 3 4\n", root.id().0, a.id().0)
    );

    // Not NUMA-aware: only node 0 is asked; the node-1 objects are not seen.
    let t = view.count(flat.id()).unwrap();
    assert_eq!(t.to_string(), format!("{} 3 0\n", a.id().0));

    // Not memcg-aware: the root only (a's objects are not seen).
    objects.lock().unwrap().insert((root.id(), 0), 9);
    let t = view.count(global.id()).unwrap();
    assert_eq!(t.to_string(), format!("{} 9 0\n", root.id().0));

    // Offline memcgs are skipped (their objects would be reparented by a real cache).
    reg.offline_memcg(&a).unwrap();
    let t = view.count(numa.id()).unwrap();
    assert_eq!(t.to_string(), format!("{} 9 7\n", root.id().0));

    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["rows"][0]["counts"], serde_json::json!([9, 7]));
    for s in [numa, flat, global] {
        s.free().unwrap();
    }
}

#[cfg(feature = "memcg")]
#[test]
fn scan_file_scans_exactly_and_reports_typed_errors() {
    let (reg, root, a, b) = setup();
    let objects = Objects::default();
    let m = cache(
        &reg,
        "m",
        ShrinkerFlags::MEMCG_AWARE | ShrinkerFlags::NUMA_AWARE,
        &objects,
    );
    let g = cache(&reg, "g", ShrinkerFlags::NONE, &objects);
    objects.lock().unwrap().insert((a.id(), 1), 50);
    objects.lock().unwrap().insert((root.id(), 0), 20);
    let view = DebugView::new(reg.clone());

    let r = view
        .scan_str(m.id(), &format!("{} 1 30\n", a.id().0))
        .unwrap();
    assert_eq!(
        r,
        ScanResult {
            shrinker: m.id().0,
            memcg: a.id().0,
            nid: 1,
            nr_to_scan: 30,
            freed: 30,
            stopped: false
        }
    );
    assert_eq!(objects.lock().unwrap()[&(a.id(), 1)], 20);
    assert_eq!(view.shrinker(m.id()).unwrap().stats.freed, 30);
    // No deferred work was taken or added by a manual scan.
    assert_eq!(
        a.shrinker_info(1).unwrap().nr_deferred(m.id().0 as usize),
        0
    );
    // nr_to_scan 0 calls nothing.
    let r = view.scan_str(m.id(), &format!("{} 1 0", a.id().0)).unwrap();
    assert_eq!(r.freed, 0);
    assert_eq!(view.shrinker(m.id()).unwrap().stats.calls, 1);

    // A global shrinker takes memcg 0 or the root, and nothing else.
    assert_eq!(view.scan_str(g.id(), "0 0 5").unwrap().memcg, root.id().0);
    assert_eq!(
        view.scan_str(g.id(), &format!("{} 0 5", root.id().0))
            .unwrap()
            .freed,
        5
    );
    assert_eq!(objects.lock().unwrap()[&(root.id(), 0)], 10);
    assert_eq!(
        view.scan_str(g.id(), &format!("{} 0 5", a.id().0)),
        Err(DebugError::NotMemcgAware {
            shrinker: g.id().0,
            memcg: a.id().0
        })
    );

    // Typed errors.
    assert_eq!(
        view.scan_str(m.id(), "1 2"),
        Err(DebugError::Parse(ParseScanError::FieldCount { found: 2 }))
    );
    assert_eq!(
        view.scan_str(m.id(), &format!("{} 2 1", a.id().0)),
        Err(DebugError::NodeOutOfRange {
            nid: 2,
            nr_nodes: 2
        })
    );
    assert_eq!(
        view.scan_str(m.id(), "999 0 1"),
        Err(DebugError::NoSuchMemcg(999))
    );
    reg.offline_memcg(&b).unwrap();
    assert_eq!(
        view.scan_str(m.id(), &format!("{} 0 1", b.id().0)),
        Err(DebugError::NoSuchMemcg(b.id().0))
    );
    assert_eq!(
        view.scan_str(unishrink_shrinker::ShrinkerId(77), "0 0 1"),
        Err(DebugError::NoSuchShrinker(77))
    );
    let e = view.scan_str(m.id(), "x 0 1").unwrap_err();
    assert!(e.to_string().contains("memcg id"), "{e}");
    assert!(std::error::Error::source(&e).is_some());
    m.free().unwrap();
    g.free().unwrap();
}

#[test]
fn stop_is_reported_and_unregistered_shrinkers_are_refused() {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    let view = DebugView::new(reg.clone());
    let s = reg
        .alloc(
            ShrinkerConfig::new("stuck"),
            from_fns(|_| Count::Objects(1), |_| Scan::Stop),
        )
        .unwrap();
    // Allocated, not registered: listed, but neither counted nor scanned.
    assert!(!view.shrinker(s.id()).unwrap().registered);
    assert_eq!(
        view.count(s.id()),
        Err(DebugError::NoSuchShrinker(s.id().0))
    );
    let s = s.register();
    // Before the root is online: nothing to count, no memcg to scan.
    assert!(view.count(s.id()).unwrap().rows.is_empty());
    assert_eq!(view.scan_str(s.id(), "0 0 1"), Err(DebugError::NoRoot));
    let root = reg.online_root().unwrap();
    assert_eq!(
        view.count(s.id()).unwrap().to_string(),
        format!("{} 1\n", root.id().0)
    );
    let r = view.scan_str(s.id(), "0 0 10").unwrap();
    assert!(r.stopped);
    assert_eq!(r.freed, 0);
    assert_eq!(
        view.memcgs(),
        vec![MemcgEntry {
            id: root.id().0,
            parent: None
        }]
    );
    s.free().unwrap();
}
