//! An RCU radix tree with IDR-style id allocation, lock-free lookups and marks.
