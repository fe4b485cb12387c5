//! Bad input gets a typed error, never a panic, and changes nothing.

use unishrink_shrinker::*;

fn registry(max_id: u32) -> (Registry, Memcg) {
    let reg = Registry::with_max_id(
        MemcgConfig {
            nr_nodes: 2,
            ..MemcgConfig::default()
        },
        max_id,
    );
    let root = reg.online_root().unwrap();
    (reg, root)
}

fn aware() -> ShrinkerConfig<'static> {
    ShrinkerConfig::new("t").flags(ShrinkerFlags::MEMCG_AWARE)
}

fn nothing() -> impl Shrink {
    from_fns(|_| Count::Empty, |_| Scan::Stop)
}

#[test]
fn walk_arguments() {
    let (reg, root) = registry(100);
    assert_eq!(
        reg.shrink_slab(&root, 0, DEF_PRIORITY + 1).unwrap_err(),
        Error::InvalidPriority(DEF_PRIORITY + 1)
    );
    assert_eq!(
        reg.shrink_slab(&root, 2, 0).unwrap_err(),
        Error::Memcg(MemcgError::NodeOutOfRange {
            nid: 2,
            nr_nodes: 2
        })
    );
    assert_eq!(
        reg.shrink_slab(&root, usize::MAX, 0).unwrap_err(),
        Error::Memcg(MemcgError::NodeOutOfRange {
            nid: usize::MAX,
            nr_nodes: 2
        })
    );
}

#[test]
fn foreign_memcg_is_refused_everywhere() {
    let (reg, root) = registry(100);
    let (other, other_root) = registry(100);
    let foreign = other.create_memcg(&other_root).unwrap();
    let s = reg.alloc(aware(), nothing()).unwrap().register();
    let e = Error::Memcg(MemcgError::ForeignMemcg);
    assert_eq!(reg.shrink_slab(&foreign, 0, 0).unwrap_err(), e);
    assert_eq!(reg.set_shrinker_bit(&foreign, 0, s.id()).unwrap_err(), e);
    assert_eq!(reg.offline_memcg(&foreign).unwrap_err(), e);
    assert_eq!(reg.create_memcg(&foreign).unwrap_err(), e);
    assert_eq!(reg.count_one(s.id(), &foreign, 0).unwrap_err(), e);
    assert!(foreign.is_online(), "a refused offline took effect");
    assert_eq!(reg.memcgs().nr_online(), 1);
    assert!(root.children().is_empty());
    s.free().unwrap();
}

#[test]
fn unknown_and_freed_shrinker_ids() {
    let (reg, root) = registry(100);
    let child = reg.create_memcg(&root).unwrap();
    let ghost = ShrinkerId(42);
    assert_eq!(
        reg.set_shrinker_bit(&child, 0, ghost).unwrap_err(),
        Error::NoSuchShrinker(ghost)
    );
    assert_eq!(
        reg.count_one(ghost, &child, 0).unwrap_err(),
        Error::NoSuchShrinker(ghost)
    );
    assert_eq!(
        reg.scan_one(ghost, &child, 0, 10).unwrap_err(),
        Error::NoSuchShrinker(ghost)
    );
    let s = reg.alloc(aware(), nothing()).unwrap().register();
    let id = s.id();
    s.free().unwrap();
    assert_eq!(
        reg.set_shrinker_bit(&child, 0, id).unwrap_err(),
        Error::NoSuchShrinker(id)
    );
    assert!(!child.shrinker_info(0).unwrap().test_bit(id.0 as usize));
    // Allocated but not registered: callbacks are not reachable yet.
    let a = reg.alloc(aware(), nothing()).unwrap();
    assert_eq!(
        reg.count_one(a.id(), &child, 0).unwrap_err(),
        Error::NoSuchShrinker(a.id())
    );
}

#[test]
fn memcg_lifecycle_misuse() {
    let (reg, root) = registry(100);
    assert_eq!(
        reg.online_root().unwrap_err(),
        Error::Memcg(MemcgError::RootAlreadyOnline)
    );
    assert_eq!(
        reg.offline_memcg(&root).unwrap_err(),
        Error::Memcg(MemcgError::IsRoot)
    );
    let parent = reg.create_memcg(&root).unwrap();
    let kid = reg.create_memcg(&parent).unwrap();
    assert_eq!(
        reg.offline_memcg(&parent).unwrap_err(),
        Error::Memcg(MemcgError::HasChildren(parent.id()))
    );
    assert!(parent.is_online());
    reg.offline_memcg(&kid).unwrap();
    assert_eq!(
        reg.offline_memcg(&kid).unwrap_err(),
        Error::Memcg(MemcgError::Offline(kid.id()))
    );
    assert_eq!(
        reg.create_memcg(&kid).unwrap_err(),
        Error::Memcg(MemcgError::Offline(kid.id()))
    );
    let s = reg.alloc(aware(), nothing()).unwrap().register();
    assert_eq!(
        reg.set_shrinker_bit(&kid, 0, s.id()).unwrap_err(),
        Error::Memcg(MemcgError::Offline(kid.id()))
    );
    // Walking an offline memcg is not an error: it frees nothing.
    assert_eq!(
        reg.shrink_slab(&kid, 0, 0).unwrap(),
        ShrinkReport::default()
    );
    s.free().unwrap();
}

#[test]
fn id_space_exhaustion_and_reuse() {
    let (reg, _root) = registry(1);
    let a = reg.alloc(aware(), nothing()).unwrap();
    let b = reg.alloc(aware(), nothing()).unwrap().register();
    assert_eq!(
        reg.alloc(aware(), nothing()).unwrap_err(),
        Error::IdSpaceExhausted
    );
    assert_eq!(reg.len(), 2);
    let freed = a.id();
    drop(a);
    assert_eq!(reg.alloc(aware(), nothing()).unwrap().id(), freed);
    b.free().unwrap();
}

#[test]
fn errors_are_descriptive() {
    let all = [
        Error::Memcg(MemcgError::ForeignMemcg),
        Error::IdSpaceExhausted,
        Error::OutOfMemory,
        Error::InvalidPriority(13),
        Error::NoSuchShrinker(ShrinkerId(3)),
    ];
    for e in all {
        let text = e.to_string();
        assert!(!text.is_empty());
        let dynerr: &dyn std::error::Error = &e;
        assert_eq!(
            dynerr.source().is_some(),
            matches!(e, Error::Memcg(_)),
            "{text}"
        );
    }
}
