//! Feature matrix: memcgs compiled out (feature `memcg` off) or disabled at
//! run time leave a working (dummy) root and refuse `create`.

use unishrink_memcg::{Config, MemcgError, MemcgTree};

fn check_root_only(t: &MemcgTree) {
    assert!(t.is_disabled());
    assert!(!t.kmem_enabled());
    t.expand_all(70).unwrap(); // before the root: boot path
    let root = t.online_root().unwrap();
    assert!(root.is_root());
    assert_eq!(t.online_root().unwrap_err(), MemcgError::RootAlreadyOnline);
    assert_eq!(t.create(&root).unwrap_err(), MemcgError::Disabled);
    assert_eq!(t.offline(&root), Err(MemcgError::IsRoot));
    assert_eq!(t.nr_online(), 1);
    assert_eq!(t.lookup(root.id()), Some(root.clone()));
    assert_eq!(t.iter().collect::<Vec<_>>(), vec![root.clone()]);

    // The root's shrinker_info is fully functional on every node.
    t.expand_all(300).unwrap();
    for nid in 0..t.nr_nodes() {
        let info = root.shrinker_info(nid).unwrap();
        assert!(info.map_nr_max() >= 300);
        info.set_bit(299).unwrap();
        assert_eq!(info.add_nr_deferred(299, 5), Ok(5));
        assert_eq!(info.iter_set_bits().collect::<Vec<_>>(), vec![299]);
    }
    let nr_nodes = t.nr_nodes();
    assert_eq!(
        root.shrinker_info(nr_nodes).err(),
        Some(MemcgError::NodeOutOfRange {
            nid: nr_nodes,
            nr_nodes
        })
    );
    assert!(t.shrinker_info_bytes() > 0);
}

#[test]
fn disabled_at_run_time() {
    let t = MemcgTree::new(Config {
        nr_nodes: 2,
        disabled: true,
        ..Config::default()
    });
    check_root_only(&t);
}

#[cfg(not(feature = "memcg"))]
#[test]
fn compiled_out() {
    let t = MemcgTree::new(Config {
        nr_nodes: 2,
        ..Config::default()
    });
    check_root_only(&t);
}

#[cfg(feature = "memcg")]
#[test]
fn enabled_by_default() {
    let t = MemcgTree::new(Config {
        nr_nodes: 2,
        ..Config::default()
    });
    assert!(!t.is_disabled());
    assert!(t.kmem_enabled());
    let root = t.online_root().unwrap();
    let child = t.create(&root).unwrap();
    assert_eq!(t.nr_online(), 2);
    assert!(!MemcgTree::new(Config {
        kmem: false,
        ..Config::default()
    })
    .kmem_enabled());
    t.offline(&child).unwrap();
}

#[test]
fn config_is_normalized() {
    let t = MemcgTree::new(Config {
        nr_nodes: 0,
        max_id: 0,
        ..Config::default()
    });
    assert_eq!(t.nr_nodes(), 1);
    assert_eq!(t.config().max_id, 1);
    let root = t.online_root().unwrap();
    assert_eq!(root.nr_nodes(), 1);
    assert!(unishrink_memcg::os_nr_nodes() >= 1);
}
