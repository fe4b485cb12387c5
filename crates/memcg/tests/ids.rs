//! Memcg id allocation: exhaustion and the cyclic policy.
#![cfg(feature = "memcg")]

use unishrink_memcg::{Config, MemcgError, MemcgId, MemcgTree};

fn tree(max_id: u32) -> MemcgTree {
    MemcgTree::new(Config {
        nr_nodes: 1,
        max_id,
        ..Config::default()
    })
}

#[test]
fn exhaustion_then_reuse_of_the_only_free_id() {
    let t = tree(3);
    let root = t.online_root().unwrap();
    let a = t.create(&root).unwrap();
    let b = t.create(&a).unwrap();
    assert_eq!(
        [root.id(), a.id(), b.id()],
        [MemcgId(1), MemcgId(2), MemcgId(3)]
    );
    assert_eq!(t.create(&root).unwrap_err(), MemcgError::IdSpaceExhausted);
    // A failed create leaves nothing behind.
    assert_eq!(t.nr_online(), 3);
    assert_eq!(root.children(), vec![a.clone()]);
    assert!(a.children() == vec![b.clone()]);

    t.offline(&b).unwrap();
    let c = t.create(&root).unwrap();
    assert_eq!(c.id(), MemcgId(3), "the only free id");
    assert_eq!(t.lookup(MemcgId(3)), Some(c.clone()));
    assert_eq!(t.create(&c).unwrap_err(), MemcgError::IdSpaceExhausted);
}

#[test]
fn max_id_one_holds_only_the_root() {
    let t = tree(1);
    let root = t.online_root().unwrap();
    assert_eq!(root.id(), MemcgId(1));
    assert_eq!(t.create(&root).unwrap_err(), MemcgError::IdSpaceExhausted);
}

#[test]
fn freed_id_is_not_reused_immediately() {
    let t = tree(100);
    let root = t.online_root().unwrap();
    let a = t.create(&root).unwrap();
    let b = t.create(&root).unwrap();
    assert_eq!((a.id(), b.id()), (MemcgId(2), MemcgId(3)));
    t.offline(&b).unwrap();
    assert_eq!(t.lookup(MemcgId(3)), None);
    let c = t.create(&root).unwrap();
    assert_eq!(c.id(), MemcgId(4), "id 3 was just freed");
    t.offline(&a).unwrap();
    let d = t.create(&root).unwrap();
    assert_eq!(d.id(), MemcgId(5));
}

#[test]
fn cursor_wraps_to_the_start_after_max_id() {
    let t = tree(4);
    let root = t.online_root().unwrap();
    let a = t.create(&root).unwrap();
    let _b = t.create(&root).unwrap();
    let c = t.create(&root).unwrap();
    assert_eq!((a.id(), c.id()), (MemcgId(2), MemcgId(4)));
    // Free the last id handed out and an earlier one: the cursor is past
    // max_id, so allocation wraps and takes 2, not the just-freed 4.
    t.offline(&c).unwrap();
    t.offline(&a).unwrap();
    let e = t.create(&root).unwrap();
    assert_eq!(e.id(), MemcgId(2));
    let f = t.create(&root).unwrap();
    assert_eq!(f.id(), MemcgId(4));
    assert_eq!(t.create(&root).unwrap_err(), MemcgError::IdSpaceExhausted);
}

#[test]
fn ids_cycle_through_the_whole_space() {
    let t = tree(5);
    let root = t.online_root().unwrap();
    let mut seen = Vec::new();
    for _ in 0..12 {
        let m = t.create(&root).unwrap();
        seen.push(m.id().0);
        t.offline(&m).unwrap();
    }
    assert_eq!(seen, [2, 3, 4, 5, 2, 3, 4, 5, 2, 3, 4, 5]);
}
