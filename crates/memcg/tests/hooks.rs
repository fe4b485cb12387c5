//! Reparent hooks: run once per successful offline with (child, parent).
#![cfg(feature = "memcg")]

use std::sync::{Arc, Mutex};

use unishrink_memcg::{Config, MemcgError, MemcgId, MemcgTree, ReparentHook};

type Log = Arc<Mutex<Vec<(MemcgId, MemcgId)>>>;

fn tree() -> MemcgTree {
    MemcgTree::new(Config {
        nr_nodes: 2,
        ..Config::default()
    })
}

fn recorder(log: &Log) -> ReparentHook {
    let log = log.clone();
    Arc::new(move |child, parent| log.lock().unwrap().push((child.id(), parent.id())))
}

#[test]
fn hook_runs_once_per_offline_with_child_and_parent() {
    let t = tree();
    let root = t.online_root().unwrap();
    let log: Log = Arc::default();
    t.register_reparent_hook(recorder(&log));
    let a = t.create(&root).unwrap();
    let b = t.create(&a).unwrap();
    let c = t.create(&root).unwrap();

    // Refused offlines run no hook.
    assert_eq!(t.offline(&root), Err(MemcgError::IsRoot));
    assert_eq!(t.offline(&a), Err(MemcgError::HasChildren(a.id())));
    assert!(log.lock().unwrap().is_empty());

    t.offline(&b).unwrap();
    t.offline(&a).unwrap();
    assert_eq!(t.offline(&a), Err(MemcgError::Offline(a.id())));
    t.offline(&c).unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec![(b.id(), a.id()), (a.id(), root.id()), (c.id(), root.id())]
    );
}

#[test]
fn hook_sees_child_offline_but_still_linked() {
    let t = tree();
    let root = t.online_root().unwrap();
    let child = t.create(&root).unwrap();
    child.shrinker_info(1).unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let (seen, t2) = (seen.clone(), t.clone());
        t.register_reparent_hook(Arc::new(move |c, p| {
            let mut s = seen.lock().unwrap();
            s.push(format!("online={}", c.is_online()));
            s.push(format!("lookup={}", t2.lookup(c.id()).is_some()));
            s.push(format!("linked={}", p.children().contains(c)));
            // Hooks run outside the tree's writer lock: they may call in.
            s.push(format!("create={}", t2.create(p).is_ok()));
        }));
    }
    t.offline(&child).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["online=false", "lookup=false", "linked=true", "create=true"]
    );
    assert!(!root.children().contains(&child), "unlinked after offline");
    assert_eq!(root.children().len(), 1, "the child the hook created");
}

#[test]
fn unregister_stops_only_that_hook() {
    let t = tree();
    let root = t.online_root().unwrap();
    let (l1, l2): (Log, Log) = Default::default();
    let h1 = t.register_reparent_hook(recorder(&l1));
    let h2 = t.register_reparent_hook(recorder(&l2));
    assert_ne!(h1, h2);

    let a = t.create(&root).unwrap();
    t.offline(&a).unwrap();
    assert!(t.unregister_reparent_hook(h1));
    assert!(!t.unregister_reparent_hook(h1), "already gone");
    let b = t.create(&root).unwrap();
    t.offline(&b).unwrap();

    assert_eq!(*l1.lock().unwrap(), vec![(a.id(), root.id())]);
    assert_eq!(
        *l2.lock().unwrap(),
        vec![(a.id(), root.id()), (b.id(), root.id())]
    );
    assert!(t.unregister_reparent_hook(h2));
    let c = t.create(&root).unwrap();
    t.offline(&c).unwrap();
    assert_eq!(l2.lock().unwrap().len(), 2);
}

#[test]
fn hooks_belong_to_their_tree() {
    let (t1, t2) = (tree(), tree());
    let (r1, r2) = (t1.online_root().unwrap(), t2.online_root().unwrap());
    let log: Log = Arc::default();
    let h = t1.register_reparent_hook(recorder(&log));
    let c2 = t2.create(&r2).unwrap();
    t2.offline(&c2).unwrap();
    assert!(log.lock().unwrap().is_empty());
    assert!(!t2.unregister_reparent_hook(h), "t2 has no hooks");
    let c1 = t1.create(&r1).unwrap();
    t1.offline(&c1).unwrap();
    assert_eq!(*log.lock().unwrap(), vec![(c1.id(), r1.id())]);
}

#[test]
fn offline_moves_counters_on_every_node() {
    let t = tree();
    t.expand_all(200).unwrap();
    let root = t.online_root().unwrap();
    let child = t.create(&root).unwrap();
    let grandchild = t.create(&child).unwrap();
    root.shrinker_info(0)
        .unwrap()
        .add_nr_deferred(3, 1)
        .unwrap();
    child
        .shrinker_info(1)
        .unwrap()
        .add_nr_deferred(199, 10)
        .unwrap();
    grandchild
        .shrinker_info(0)
        .unwrap()
        .add_nr_deferred(3, 100)
        .unwrap();
    grandchild
        .shrinker_info(1)
        .unwrap()
        .add_nr_deferred(199, 1000)
        .unwrap();
    grandchild.shrinker_info(1).unwrap().set_bit(5).unwrap();

    t.offline(&grandchild).unwrap();
    assert_eq!(child.shrinker_info(0).unwrap().nr_deferred(3), 100);
    assert_eq!(child.shrinker_info(1).unwrap().nr_deferred(199), 1010);
    assert_eq!(grandchild.shrinker_info(1).unwrap().nr_deferred(199), 0);
    t.offline(&child).unwrap();
    assert_eq!(root.shrinker_info(0).unwrap().nr_deferred(3), 101);
    assert_eq!(root.shrinker_info(1).unwrap().nr_deferred(199), 1010);
    assert_eq!(child.shrinker_info(0).unwrap().nr_deferred(3), 0);
}
