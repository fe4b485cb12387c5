//! The harness itself: a bounded clean run finds nothing, each deliberate
//! harness bug is found (so every check can fail), schedules are a pure
//! function of the seed, and the command line is parsed strictly.

use std::time::Duration;
use unishrink_stress::{parse_args, run, schedule, ArgError, Config, Op, Sabotage};

fn small(seed: u64, sabotage: Option<Sabotage>) -> Config {
    Config {
        threads: 3,
        duration: Duration::from_secs(4),
        max_ops_per_thread: Some(1500),
        seed,
        sabotage,
        ..Config::default()
    }
}

#[test]
fn clean_run_has_no_violations() {
    for seed in [1, 2] {
        let out = run(&small(seed, None));
        assert_eq!(out.violations, 0, "seed {seed}: {:#?}", out.messages);
        assert!(out.ops > 0);
        assert!(
            out.freed > 0,
            "no object was ever reclaimed: the run proves little"
        );
        assert!(out.checked_offlines > 0, "no checked offline happened");
        assert!(out.lru_items > 0, "no list_lru cache was used");
        for (op, n) in &out.per_op {
            assert!(*n > 0, "{op:?} never ran");
        }
    }
}

fn assert_caught(sabotage: Sabotage, needle: &str) {
    let out = run(&small(3, Some(sabotage)));
    assert!(out.violations > 0, "{sabotage:?} went unnoticed");
    assert!(
        out.messages.iter().any(|m| m.contains(needle)),
        "{sabotage:?}: no message mentions {needle:?}: {:#?}",
        out.messages
    );
}

#[test]
fn dropped_objects_on_reparent_are_caught() {
    assert_caught(Sabotage::DropItemsOnReparent, "objects of shrinker");
}

#[test]
fn missing_bit_is_caught() {
    assert_caught(Sabotage::SkipBitOnAdd, "lost bit");
}

#[test]
fn leaked_shrinker_is_caught() {
    assert_caught(Sabotage::LeakShrinker, "leak:");
}

#[test]
fn schedule_is_a_function_of_seed_and_thread() {
    assert_eq!(schedule(42, 0, 500), schedule(42, 0, 500));
    assert_ne!(schedule(42, 0, 500), schedule(42, 1, 500));
    assert_ne!(schedule(42, 0, 500), schedule(43, 0, 500));
    // Thread i of seed s is thread 0 of seed s + i.
    assert_eq!(schedule(42, 3, 100), schedule(45, 0, 100));
    let ops = schedule(9, 0, 2000);
    for op in [Op::AddItems, Op::Walk, Op::FreeShrinker, Op::OfflineMemcg] {
        assert!(ops.iter().any(|s| s.op == op), "{op:?} never scheduled");
    }
}

#[test]
fn summary_line_format() {
    let out = run(&Config {
        threads: 1,
        max_ops_per_thread: Some(50),
        ..small(5, None)
    });
    let line = out.summary_line();
    assert!(
        line.starts_with(&format!("stress: {} ops, 1 threads, ", out.ops)),
        "{line}"
    );
    assert!(line.ends_with(" s, 0 violations"), "{line}");
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn command_line() {
    let c = parse_args(
        &args(&["--seconds", "2.5", "--threads", "3", "--seed", "9"]),
        1,
    )
    .unwrap();
    assert_eq!(c.duration, Duration::from_millis(2500));
    assert_eq!((c.threads, c.seed), (3, 9));
    assert_eq!(parse_args(&[], 77).unwrap().seed, 77);
    assert_eq!(
        parse_args(&args(&["--threads", "0"]), 0).unwrap_err(),
        ArgError::BadValue {
            option: "--threads".into(),
            value: "0".into()
        }
    );
    assert_eq!(
        parse_args(&args(&["--seconds"]), 0).unwrap_err(),
        ArgError::MissingValue("--seconds".into())
    );
    assert_eq!(
        parse_args(&args(&["--seconds", "-1"]), 0).unwrap_err(),
        ArgError::BadValue {
            option: "--seconds".into(),
            value: "-1".into()
        }
    );
    assert_eq!(
        parse_args(&args(&["--asan"]), 0).unwrap_err(),
        ArgError::Unknown("--asan".into())
    );
}
