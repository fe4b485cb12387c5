//! Model test: random operation sequences against a `BTreeMap<u64, (Arc<Value>, marks)>`.
//! After every operation the return value, the full contents (via `iter` and `load`),
//! `len` and `height` must match the model.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use unishrink_xarray::{pin, AllocError, Mark, XArray, LINE_SPACING};

#[derive(Debug, PartialEq, Eq)]
struct Value(u64);

#[derive(Clone, Debug)]
enum Op {
    Alloc(u64, u64),
    AllocCyclic(u64, u64),
    Store(u64),
    Erase(u64),
    Remove(u64),
    Load(u64),
    Iter(u64),
    SetMark(u64, u8),
    ClearMark(u64, u8),
    GetMark(u64, u8),
    IterMarked(u64, u8),
}

const MARKS: [Mark; 3] = [Mark::Mark0, Mark::Mark1, Mark::Mark2];

/// Indexes concentrated around interesting places: small ids, node boundaries,
/// around 2^40 and the top of the u64 range.
fn index() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..200,
        2 => (0u32..64).prop_map(|b| 1u64 << b),
        2 => (0u32..64, 0u64..3).prop_map(|(b, d)| (1u64 << b).wrapping_sub(d)),
        2 => ((1u64 << 40) - 3)..((1u64 << 40) + 70),
        1 => (u64::MAX - 70)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

fn range() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        3 => (0u64..100, 0u64..100),
        1 => Just((0, u64::MAX)),
        // From 0, as the shrinker IDR allocates (the one-descent fast path),
        // with ends that cut into the tree.
        2 => (0u64..200).prop_map(|end| (0, end)),
        1 => (index(), index()),
        1 => (0u64..70).prop_map(|d| (1u64 << 40, (1u64 << 40) + d)),
        1 => (0u64..4).prop_map(|d| (u64::MAX - d, u64::MAX)),
        1 => (5u64..9).prop_map(|s| (s, 4)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => range().prop_map(|(a, b)| Op::Alloc(a, b)),
        2 => range().prop_map(|(a, b)| Op::AllocCyclic(a, b)),
        4 => index().prop_map(Op::Store),
        4 => index().prop_map(Op::Erase),
        2 => index().prop_map(Op::Remove),
        2 => index().prop_map(Op::Load),
        1 => index().prop_map(Op::Iter),
        2 => (index(), 0u8..3).prop_map(|(i, m)| Op::SetMark(i, m)),
        1 => (index(), 0u8..3).prop_map(|(i, m)| Op::ClearMark(i, m)),
        1 => (index(), 0u8..3).prop_map(|(i, m)| Op::GetMark(i, m)),
        1 => (index(), 0u8..3).prop_map(|(i, m)| Op::IterMarked(i, m)),
    ]
}

#[derive(Default)]
struct Model {
    map: BTreeMap<u64, (Arc<Value>, [bool; 3])>,
    next_cyclic: u64,
}

impl Model {
    fn first_free(&self, r: RangeInclusive<u64>) -> Option<u64> {
        let (start, end) = (*r.start(), *r.end());
        let mut want = start;
        for (&k, _) in self.map.range(r) {
            if k != want {
                return Some(want);
            }
            if k == end {
                return None;
            }
            want = k + 1;
        }
        Some(want)
    }
}

fn expected_height(model: &Model) -> usize {
    match model.map.keys().next_back() {
        None => 0,
        Some(&max) => {
            let mut h = 1;
            while h < 11 && max >= 1u64 << (6 * h) {
                h += 1;
            }
            h
        }
    }
}

fn check_all<const S: usize>(
    xa: &XArray<Value, (), S>,
    model: &Model,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(xa.len(), model.map.len());
    prop_assert_eq!(xa.is_empty(), model.map.is_empty());
    prop_assert_eq!(xa.height(), expected_height(model));
    let g = pin();
    let got: Vec<(u64, *const Value)> = xa
        .iter(0, &g)
        .map(|(i, v)| (i, v as *const Value))
        .collect();
    let want: Vec<(u64, *const Value)> = model
        .map
        .iter()
        .map(|(&i, (v, _))| (i, Arc::as_ptr(v)))
        .collect();
    prop_assert_eq!(got, want);
    for (&i, (v, marks)) in &model.map {
        prop_assert!(std::ptr::eq(xa.load(i, &g).unwrap(), Arc::as_ptr(v)));
        for (m, &on) in MARKS.iter().zip(marks) {
            prop_assert_eq!(xa.get_mark(i, *m), on);
        }
    }
    for (mi, m) in MARKS.iter().enumerate() {
        let got: Vec<u64> = xa.iter_marked(0, *m, &g).map(|(i, _)| i).collect();
        let want: Vec<u64> = model
            .map
            .iter()
            .filter(|(_, (_, mk))| mk[mi])
            .map(|(&i, _)| i)
            .collect();
        prop_assert_eq!(got, want);
    }
    Ok(())
}

/// Runs `ops` on a tree of slot spacing `S` and on the model.
fn run<const S: usize>(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let xa: XArray<Value, (), S> = XArray::default();
    let mut model = Model::default();
    let mut serial = 0u64;
    for op in ops {
        serial += 1;
        match op {
            Op::Alloc(a, b) => {
                let v = Arc::new(Value(serial));
                let got = xa.alloc(v.clone(), a..=b);
                let want = if a > b {
                    Err(AllocError::EmptyRange)
                } else {
                    model.first_free(a..=b).ok_or(AllocError::Full)
                };
                prop_assert_eq!(got, want);
                if let Ok(i) = want {
                    model.map.insert(i, (v, [false; 3]));
                }
            }
            Op::AllocCyclic(a, b) => {
                let v = Arc::new(Value(serial));
                let got = xa.alloc_cyclic(v.clone(), a..=b);
                let want = if a > b {
                    Err(AllocError::EmptyRange)
                } else {
                    let n = model.next_cyclic;
                    let from = if n < a || n > b { a } else { n };
                    model
                        .first_free(from..=b)
                        .or_else(|| {
                            if from > a {
                                model.first_free(a..=from - 1)
                            } else {
                                None
                            }
                        })
                        .ok_or(AllocError::Full)
                };
                prop_assert_eq!(got, want);
                if let Ok(i) = want {
                    model.map.insert(i, (v, [false; 3]));
                    model.next_cyclic = i.wrapping_add(1);
                }
            }
            Op::Store(i) => {
                let v = Arc::new(Value(serial));
                let got = xa.store(i, v.clone()).unwrap();
                let marks = model.map.get(&i).map(|e| e.1).unwrap_or_default();
                let want = model.map.insert(i, (v, marks)).map(|e| e.0);
                prop_assert_eq!(
                    got.as_ref().map(Arc::as_ptr),
                    want.as_ref().map(Arc::as_ptr)
                );
            }
            Op::Erase(i) => {
                let got = xa.erase(i);
                let want = model.map.remove(&i).map(|e| e.0);
                prop_assert_eq!(
                    got.as_ref().map(Arc::as_ptr),
                    want.as_ref().map(Arc::as_ptr)
                );
            }
            Op::Remove(i) => {
                let got = xa.remove(i);
                let want = model.map.remove(&i).is_some();
                prop_assert_eq!(got, want);
            }
            Op::Load(i) => {
                let g = pin();
                let got = xa.load(i, &g).map(|v| v as *const Value);
                let want = model.map.get(&i).map(|e| Arc::as_ptr(&e.0));
                prop_assert_eq!(got, want);
                let got = xa.get(i);
                prop_assert_eq!(got.as_ref().map(Arc::as_ptr), want);
            }
            Op::Iter(start) => {
                let g = pin();
                let got: Vec<u64> = xa.iter(start, &g).map(|(i, _)| i).collect();
                let want: Vec<u64> = model.map.range(start..).map(|(&i, _)| i).collect();
                prop_assert_eq!(got, want);
            }
            Op::SetMark(i, m) | Op::ClearMark(i, m) => {
                let on = matches!(op, Op::SetMark(..));
                let got = if on {
                    xa.set_mark(i, MARKS[m as usize])
                } else {
                    xa.clear_mark(i, MARKS[m as usize])
                };
                let want = match model.map.get_mut(&i) {
                    Some(e) => {
                        e.1[m as usize] = on;
                        true
                    }
                    None => false,
                };
                prop_assert_eq!(got, want);
            }
            Op::GetMark(i, m) => {
                let want = model.map.get(&i).is_some_and(|e| e.1[m as usize]);
                prop_assert_eq!(xa.get_mark(i, MARKS[m as usize]), want);
            }
            Op::IterMarked(start, m) => {
                let g = pin();
                let got: Vec<u64> = xa
                    .iter_marked(start, MARKS[m as usize], &g)
                    .map(|(i, _)| i)
                    .collect();
                let want: Vec<u64> = model
                    .map
                    .range(start..)
                    .filter(|(_, e)| e.1[m as usize])
                    .map(|(&i, _)| i)
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
        check_all(&xa, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn xarray_matches_btreemap(ops in prop::collection::vec(op(), 1..120)) {
        run::<1>(ops.clone())?;
        run::<LINE_SPACING>(ops)?;
    }
}

/// A deterministic dense sequence: fill 0..5000 via alloc, erase every other id,
/// re-alloc, so multi-level free-bit paths are exercised beyond what random ops reach.
#[test]
fn dense_alloc_erase_realloc() {
    dense_alloc_erase_realloc_spaced::<1>();
    dense_alloc_erase_realloc_spaced::<LINE_SPACING>();
}

fn dense_alloc_erase_realloc_spaced<const S: usize>() {
    let mut ops = Vec::new();
    for _ in 0..5000 {
        ops.push(Op::Alloc(0, 10_000));
    }
    for i in (0..5000).step_by(2) {
        ops.push(Op::Erase(i));
    }
    for _ in 0..2600 {
        ops.push(Op::Alloc(100, 4999));
    }
    // check_all after every op would be quadratic; run with a light check instead.
    let xa: XArray<Value, (), S> = XArray::default();
    let mut model = Model::default();
    for (n, op) in ops.into_iter().enumerate() {
        match op {
            Op::Alloc(a, b) => {
                let v = Arc::new(Value(n as u64));
                let want = model.first_free(a..=b).ok_or(AllocError::Full);
                assert_eq!(xa.alloc(v.clone(), a..=b), want);
                if let Ok(i) = want {
                    model.map.insert(i, (v, [false; 3]));
                }
            }
            Op::Erase(i) => {
                assert_eq!(xa.erase(i).is_some(), model.map.remove(&i).is_some());
            }
            _ => unreachable!(),
        }
    }
    check_all(&xa, &model).unwrap();
}
