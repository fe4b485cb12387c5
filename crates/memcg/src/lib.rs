//! The memory cgroup hierarchy: root (or a dummy root), per-node shrinker_info, lifecycle and reparenting.
