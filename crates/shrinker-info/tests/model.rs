//! Model-based test: two `ShrinkerInfo`s against `Vec<bool>` + `Vec<u64>`
//! models, under random sequences of every operation, including growth
//! (larger, equal and smaller), reparenting between infos of different sizes
//! and injected allocation failures.
#![cfg(not(loom))]

use proptest::prelude::*;
use unishrink_shrinker_info::{InfoError, ShrinkerInfo, UNIT_BITS};

#[derive(Debug, Clone)]
enum Op {
    Expand(usize),
    Set(usize),
    Clear(usize),
    Test(usize),
    Add(usize, u64),
    Xchg(usize),
    Iter,
    Reparent,
    FailNext(usize),
}

/// Ids range a bit beyond the largest capacity to exercise IdOutOfRange.
const MAX_ID: usize = 1400;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..1300usize).prop_map(Op::Expand),
        6 => (0..MAX_ID).prop_map(Op::Set),
        3 => (0..MAX_ID).prop_map(Op::Clear),
        2 => (0..MAX_ID).prop_map(Op::Test),
        4 => (0..MAX_ID, prop_oneof![Just(0u64), 1..1000u64, Just(u64::MAX - 3)])
            .prop_map(|(i, d)| Op::Add(i, d)),
        2 => (0..MAX_ID).prop_map(Op::Xchg),
        2 => Just(Op::Iter),
        1 => Just(Op::Reparent),
        1 => (1..3usize).prop_map(Op::FailNext),
    ]
}

struct Model {
    bits: Vec<bool>,
    deferred: Vec<u64>,
}

impl Model {
    fn new(n: usize) -> Self {
        let n = n.div_ceil(UNIT_BITS) * UNIT_BITS;
        Model {
            bits: vec![false; n],
            deferred: vec![0; n],
        }
    }
    fn grow(&mut self, n: usize) {
        let n = n.div_ceil(UNIT_BITS) * UNIT_BITS;
        if n > self.bits.len() {
            self.bits.resize(n, false);
            self.deferred.resize(n, 0);
        }
    }
    fn set_ids(&self) -> Vec<usize> {
        (0..self.bits.len()).filter(|&i| self.bits[i]).collect()
    }
}

fn check_all(info: &ShrinkerInfo, m: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(info.map_nr_max(), m.bits.len());
    prop_assert_eq!(info.iter_set_bits().collect::<Vec<_>>(), m.set_ids());
    for i in 0..MAX_ID {
        prop_assert_eq!(
            info.test_bit(i),
            m.bits.get(i).copied().unwrap_or(false),
            "bit {}",
            i
        );
        prop_assert_eq!(
            info.nr_deferred(i),
            m.deferred.get(i).copied().unwrap_or(0),
            "ctr {}",
            i
        );
    }
    Ok(())
}

/// Applies `op` to info `k` (the other one is the reparent target).
fn apply(
    infos: &[ShrinkerInfo; 2],
    models: &mut [Model; 2],
    k: usize,
    op: &Op,
) -> Result<(), TestCaseError> {
    let (info, other) = (&infos[k], &infos[1 - k]);
    match *op {
        Op::Expand(n) => match info.expand(n) {
            Ok(()) => models[k].grow(n),
            Err(e) => {
                prop_assert_eq!(e, InfoError::OutOfMemory);
                // A failed growth must leave everything as it was.
                check_all(info, &models[k])?;
            }
        },
        Op::Set(i) => {
            let m = &mut models[k];
            match info.set_bit(i) {
                Ok(()) => m.bits[i] = true,
                Err(InfoError::IdOutOfRange { id, map_nr_max }) => {
                    prop_assert_eq!((id, map_nr_max), (i, m.bits.len()));
                    prop_assert!(i >= m.bits.len());
                }
                Err(e) => {
                    prop_assert_eq!(e, InfoError::OutOfMemory);
                    prop_assert!(!m.bits[i] && !info.test_bit(i));
                }
            }
        }
        Op::Clear(i) => {
            info.clear_bit(i);
            if let Some(b) = models[k].bits.get_mut(i) {
                *b = false;
            }
        }
        Op::Test(i) => {
            prop_assert_eq!(
                info.test_bit(i),
                models[k].bits.get(i).copied().unwrap_or(false)
            )
        }
        Op::Add(i, d) => {
            let m = &mut models[k];
            match info.add_nr_deferred(i, d) {
                Ok(v) => {
                    m.deferred[i] = m.deferred[i].saturating_add(d);
                    prop_assert_eq!(v, m.deferred[i]);
                }
                Err(InfoError::IdOutOfRange { .. }) => prop_assert!(i >= m.bits.len()),
                Err(e) => {
                    prop_assert_eq!(e, InfoError::OutOfMemory);
                    prop_assert!(d != 0, "delta 0 must not allocate");
                }
            }
        }
        Op::Xchg(i) => {
            let m = &mut models[k];
            let want = m.deferred.get_mut(i).map(std::mem::take).unwrap_or(0);
            prop_assert_eq!(info.xchg_nr_deferred(i), want);
        }
        Op::Iter => prop_assert_eq!(
            info.iter_set_bits().collect::<Vec<_>>(),
            models[k].set_ids()
        ),
        Op::Reparent => {
            let sum = |ms: &[Model; 2]| -> u128 {
                ms.iter()
                    .flat_map(|m| m.deferred.iter())
                    .map(|&v| v as u128)
                    .sum()
            };
            let before = sum(models);
            let res = info.reparent_into(other);
            // Rebuild both models from the infos' observable counters, then
            // check conservation against the model sum and the expected moves.
            let (child_len, parent_len_before) = (models[k].bits.len(), models[1 - k].bits.len());
            let parent_len = other.map_nr_max();
            prop_assert!(parent_len >= parent_len_before);
            models[1 - k].grow(parent_len);
            let mut after = [vec![0u64; child_len], vec![0u64; parent_len]];
            for (i, slot) in after[0].iter_mut().enumerate() {
                *slot = info.nr_deferred(i);
            }
            for (i, slot) in after[1].iter_mut().enumerate() {
                *slot = other.nr_deferred(i);
            }
            // Per id: the child's count either moved entirely or stayed.
            for i in 0..child_len.max(parent_len) {
                let c0 = models[k].deferred.get(i).copied().unwrap_or(0);
                let p0 = models[1 - k].deferred.get(i).copied().unwrap_or(0);
                let c1 = after[0].get(i).copied().unwrap_or(0);
                let p1 = after[1].get(i).copied().unwrap_or(0);
                let moved = c0 != 0 && c1 == 0 && p1 == p0.saturating_add(c0);
                let stayed = c1 == c0 && p1 == p0;
                prop_assert!(
                    moved || stayed,
                    "id {} c {}->{} p {}->{}",
                    i,
                    c0,
                    c1,
                    p0,
                    p1
                );
                if res.is_ok() {
                    prop_assert_eq!(c1, 0, "id {} not moved", i);
                }
            }
            if res.is_ok()
                && parent_len_before < child_len
                && models[k]
                    .deferred
                    .iter()
                    .skip(parent_len_before)
                    .any(|&v| v != 0)
            {
                prop_assert!(parent_len >= child_len, "parent not expanded");
            }
            models[k].deferred.copy_from_slice(&after[0]);
            models[1 - k].deferred.copy_from_slice(&after[1]);
            // Saturation at u64::MAX can lose mass; otherwise the sum is exact.
            if !models[1 - k].deferred.contains(&u64::MAX) {
                prop_assert_eq!(sum(models), before);
            }
            if let Err(e) = res {
                prop_assert_eq!(e, InfoError::OutOfMemory);
            }
        }
        Op::FailNext(n) => info.fail_next_allocations(n),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn matches_model(
        sizes in (0..700usize, 0..700usize),
        ops in prop::collection::vec((0..2usize, op()), 1..120),
    ) {
        let infos = [ShrinkerInfo::new(sizes.0).unwrap(), ShrinkerInfo::new(sizes.1).unwrap()];
        let mut models = [Model::new(sizes.0), Model::new(sizes.1)];
        for (k, op) in &ops {
            apply(&infos, &mut models, *k, op)?;
        }
        for k in 0..2 {
            infos[k].fail_next_allocations(0);
            check_all(&infos[k], &models[k])?;
        }
    }

    /// Every growth keeps every bit and counter.
    #[test]
    fn growth_keeps_everything(
        start in 0..300usize,
        bits in prop::collection::vec(0..300usize, 0..40),
        ctrs in prop::collection::vec((0..300usize, 1..100u64), 0..40),
        steps in prop::collection::vec(0..5000usize, 1..6),
    ) {
        let info = ShrinkerInfo::new(start).unwrap();
        let mut m = Model::new(start);
        for &b in &bits {
            if b < m.bits.len() { info.set_bit(b).unwrap(); m.bits[b] = true; }
        }
        for &(i, d) in &ctrs {
            if i < m.bits.len() { info.add_nr_deferred(i, d).unwrap(); m.deferred[i] += d; }
        }
        for &n in &steps {
            info.expand(n).unwrap();
            m.grow(n);
            prop_assert_eq!(info.map_nr_max(), m.bits.len());
            prop_assert_eq!(info.iter_set_bits().collect::<Vec<_>>(), m.set_ids());
            for i in 0..m.bits.len().min(400) {
                prop_assert_eq!(info.nr_deferred(i), m.deferred[i]);
            }
        }
    }
}
