//! Shrinker handles keep their registry alive without a reference count of
//! their own: the registry holds itself while any shrinker is in its IDR.
//! These tests drop the user's last `Registry` first and check that handles
//! still work, and that the registry goes away with the last shrinker.

use unishrink_shrinker::*;

fn registry() -> Registry {
    Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    })
}

fn trivial() -> impl Shrink {
    from_fns(|_| Count::Objects(4), |sc| Scan::Freed(sc.nr_to_scan))
}

#[test]
fn handles_outlive_the_users_registry_and_release_it() {
    let reg = registry();
    let root = reg.online_root().unwrap();
    let weak = reg.downgrade();
    let allocated = reg.alloc(ShrinkerConfig::new("a"), trivial()).unwrap();
    let registered = reg
        .alloc(ShrinkerConfig::new("r"), trivial())
        .unwrap()
        .register();
    drop(reg);
    // Still alive, and usable through the handles.
    let through_handle = registered.registry().clone();
    assert_eq!(through_handle.len(), 2);
    assert!(through_handle.shrink_slab(&root, 0, 0).unwrap().freed > 0);
    drop(through_handle);
    assert!(weak.upgrade().is_some());
    drop(allocated);
    assert!(weak.upgrade().is_some(), "one shrinker is left");
    registered.free().unwrap();
    drop(root);
    assert!(
        weak.upgrade().is_none(),
        "the last shrinker released the registry"
    );
}

#[test]
fn the_keepalive_comes_and_goes_with_the_shrinkers() {
    let reg = registry();
    let weak = reg.downgrade();
    for round in 0..3 {
        let hs: Vec<_> = (0..5)
            .map(|i| {
                reg.alloc(ShrinkerConfig::new(format!("{round}-{i}")), trivial())
                    .unwrap()
                    .register()
            })
            .collect();
        for h in hs {
            h.free().unwrap();
        }
        assert_eq!(reg.len(), 0);
    }
    // A failed alloc (id space exhausted) takes no keepalive either.
    let tiny = Registry::with_max_id(
        MemcgConfig {
            nr_nodes: 1,
            ..MemcgConfig::default()
        },
        0,
    );
    let tiny_weak = tiny.downgrade();
    let only = tiny.alloc(ShrinkerConfig::new("only"), trivial()).unwrap();
    assert!(matches!(
        tiny.alloc(ShrinkerConfig::new("more"), trivial()),
        Err(Error::IdSpaceExhausted)
    ));
    drop(tiny);
    assert!(tiny_weak.upgrade().is_some());
    drop(only);
    assert!(tiny_weak.upgrade().is_none());
    drop(reg);
    assert!(weak.upgrade().is_none());
}
