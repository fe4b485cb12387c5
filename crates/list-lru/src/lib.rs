//! A memcg-aware, NUMA-aware LRU list that sets shrinker bits and reparents on offline.
