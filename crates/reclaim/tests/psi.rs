//! PSI: parser on real file contents, triggers, and the background reclaimer.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use unishrink_reclaim::psi::*;
use unishrink_shrinker::{from_fns, Count, MemcgConfig, Registry, Scan, ShrinkerConfig};

/// `/proc/pressure/memory` on the development machine (idle).
const IDLE: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
/// A loaded machine's memory.pressure (cgroup v2, during a memory hog run).
const LOADED: &str = "some avg10=12.34 avg60=5.67 avg300=1.02 total=98765432\n\
                      full avg10=8.01 avg60=3.20 avg300=0.55 total=45678901\n";
/// Pre-5.13 `/proc/pressure/cpu`: no `full` line.
const CPU_OLD: &str = "some avg10=0.35 avg60=0.21 avg300=0.10 total=3141592\n";
/// `/proc/self/cgroup` on the development machine (hybrid hierarchy).
const SELF_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/bf5a\n0::/\n";

#[test]
fn parses_real_pressure_files() {
    let p = parse_pressure(IDLE).unwrap();
    assert_eq!(p.some, PressureLine::default());
    assert_eq!(p.full, Some(PressureLine::default()));
    let p = parse_pressure(LOADED).unwrap();
    assert_eq!(p.some.avg10, 12.34);
    assert_eq!(p.some.avg300, 1.02);
    assert_eq!(p.some.total_us, 98_765_432);
    assert_eq!(p.full.unwrap().avg60, 3.20);
    let p = parse_pressure(CPU_OLD).unwrap();
    assert_eq!(p.full, None);
    assert_eq!(p.some.total_us, 3_141_592);
}

#[test]
fn malformed_pressure_is_a_typed_error() {
    for bad in [
        "",
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=x avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 total=0\n",
        "most avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10 avg60=0.00 avg300=0.00 total=0\n",
    ] {
        assert!(
            matches!(parse_pressure(bad), Err(PsiError::Parse { .. })),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn finds_the_cgroup2_path() {
    assert_eq!(parse_cgroup2_path(SELF_CGROUP), Some("/"));
    assert_eq!(parse_cgroup2_path("4:memory:/x\n"), None);
}

#[test]
fn reads_this_machines_pressure_or_says_why_not() {
    match system_memory_pressure() {
        Ok(p) => assert!(p.some.avg10 >= 0.0 && p.some.avg10 <= 100.0),
        Err(e) => assert!(matches!(e, PsiError::NotSupported { .. }), "{e}"),
    }
    assert!(matches!(
        read_pressure("/nonexistent/memory.pressure"),
        Err(PsiError::NotSupported { .. })
    ));
}

#[test]
fn trigger_errors_are_typed() {
    let one = Duration::from_secs(1);
    assert!(matches!(
        PsiTrigger::new(
            "/nonexistent/memory.pressure",
            StallKind::Some,
            one / 10,
            one
        ),
        Err(PsiError::NotSupported { .. })
    ));
    assert!(matches!(
        PsiTrigger::new(PROC_PRESSURE_MEMORY, StallKind::Some, 2 * one, one),
        Err(PsiError::InvalidTrigger { .. })
    ));
    assert!(matches!(
        PsiTrigger::new(PROC_PRESSURE_MEMORY, StallKind::Full, one / 100, one * 20),
        Err(PsiError::InvalidTrigger { .. })
    ));
}

#[test]
fn arms_a_real_trigger_where_the_kernel_allows() {
    let r = PsiTrigger::new(
        PROC_PRESSURE_MEMORY,
        StallKind::Some,
        Duration::from_millis(150),
        Duration::from_secs(2),
    );
    match r {
        Ok(t) => assert_eq!(t.spec(), "some 150000 2000000"),
        Err(PsiError::NotSupported { .. } | PsiError::PermissionDenied { .. }) => {}
        Err(e) => panic!("unexpected: {e}"),
    }
}

fn registry_with_cache(
    n: u64,
) -> (
    Registry,
    unishrink_shrinker::RegisteredShrinker,
    Arc<AtomicU64>,
) {
    let reg = Registry::new(MemcgConfig {
        nr_nodes: 1,
        ..MemcgConfig::default()
    });
    reg.online_root().unwrap();
    let objects = Arc::new(AtomicU64::new(n));
    let (c, s) = (objects.clone(), objects.clone());
    let sh = reg
        .alloc(
            ShrinkerConfig::new("psi-cache"),
            from_fns(
                move |_| Count::Objects(c.load(Ordering::Relaxed)),
                move |sc| {
                    let take = sc.nr_to_scan.min(s.load(Ordering::Relaxed));
                    s.fetch_sub(take, Ordering::Relaxed);
                    Scan::Freed(take)
                },
            ),
        )
        .unwrap()
        .register();
    (reg, sh, objects)
}

#[test]
fn reclaimer_runs_on_fd_events_and_stops() {
    let (reg, _sh, objects) = registry_with_cache(10_000);
    let mut fds = [0; 2];
    // SAFETY: a valid two-int array; the descriptors are owned below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 succeeded: both fds are open and owned by nobody else.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            OwnedFd::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    let (tx, rx) = mpsc::channel();
    let reclaimer = PressureReclaimer::spawn(
        reg,
        PressureSource::Fd(r),
        None,
        1_000,
        Some(Box::new(move |rep| {
            let _ = tx.send(rep.freed);
        })),
    )
    .unwrap();
    let mut w = w;
    w.write_all(&[1]).unwrap();
    let freed = rx.recv().unwrap();
    assert!(freed >= 1_000);
    assert_eq!(reclaimer.stats().events(), 1);
    assert_eq!(reclaimer.stats().freed(), freed);
    assert_eq!(10_000 - objects.load(Ordering::Relaxed), freed);
    reclaimer.stop().unwrap();
}

#[test]
fn sampling_fallback_fires_over_the_threshold() {
    let (reg, _sh, _objects) = registry_with_cache(10_000);
    let dir = std::env::temp_dir().join(format!("unishrink-psi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("memory.pressure");
    std::fs::write(&path, LOADED).unwrap();
    let (tx, rx) = mpsc::channel();
    let reclaimer = PressureReclaimer::spawn(
        reg,
        PressureSource::Sample {
            path: path.clone(),
            interval: Duration::from_millis(5),
            avg10_threshold: 10.0,
        },
        None,
        100,
        Some(Box::new(move |rep| {
            let _ = tx.send(rep.freed);
        })),
    )
    .unwrap();
    assert!(rx.recv().unwrap() >= 100);
    reclaimer.stop().unwrap();
    // A plain file cannot take a trigger: the helper falls back to sampling.
    let (src, why) = PressureSource::trigger_or_sample(
        &path,
        Duration::from_millis(100),
        Duration::from_secs(1),
        10.0,
    )
    .unwrap();
    assert!(matches!(src, PressureSource::Sample { .. }));
    assert!(
        matches!(why, Some(PsiError::NotPressureFile { .. })),
        "{why:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
