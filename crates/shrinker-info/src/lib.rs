//! Per-node shrinker_info: lazily allocated units of shrinker bits and nr_deferred counters, grown by pointer swap.
