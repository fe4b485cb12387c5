//! The unified shrinker registry, lifecycle and the single lockless shrink_slab.
