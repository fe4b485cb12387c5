//! Reclaim drivers: the priority loop, targeted memcg reclaim, charge limits and Linux PSI triggers.
