//! Linux Pressure Stall Information (PSI) as a reclaim trigger.
//!
//! `/proc/pressure/memory` (and a cgroup v2 group's `memory.pressure`) read
//! as two lines:
//!
//! ```text
//! some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//! full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//! ```
//!
//! `avg*` are the percentages of wall time in which some (or all) non-idle
//! tasks stalled on memory over 10 s, 60 s and 300 s; `total` is the stall
//! time in microseconds. Writing `"some 150000 1000000"` to an open file arms
//! a *trigger*: the kernel raises `POLLPRI` on that file descriptor when the
//! stall time exceeds 150 ms within any 1 s window (`Documentation/
//! accounting/psi.rst`). The window must be 500 ms…10 s; unprivileged
//! writers need a window that is a multiple of 2 s. A trigger lives as long as
//! the file descriptor; `POLLERR` means the monitored cgroup went away.
//!
//! [`PressureReclaimer`] runs reclaim on a background thread whenever its
//! [`PressureSource`] fires: a kernel trigger, any pollable descriptor, or —
//! where triggers are missing or not writable — sampling `avg10` at an
//! interval against a threshold.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use unishrink_memcg::Memcg;
use unishrink_shrinker::Registry;

use crate::priority::{reclaim_global, reclaim_memcg, ReclaimReport};

/// The system-wide memory pressure file.
pub const PROC_PRESSURE_MEMORY: &str = "/proc/pressure/memory";

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// One line of a pressure file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PressureLine {
    /// Percent stalled, 10 s average.
    pub avg10: f64,
    /// Percent stalled, 60 s average.
    pub avg60: f64,
    /// Percent stalled, 300 s average.
    pub avg300: f64,
    /// Total stall time, microseconds.
    pub total_us: u64,
}

/// A parsed pressure file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pressure {
    /// Some tasks stalled.
    pub some: PressureLine,
    /// All non-idle tasks stalled (absent from old kernels' cpu files).
    pub full: Option<PressureLine>,
}

/// Which stall a trigger watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallKind {
    /// `some`: at least one task stalled.
    Some,
    /// `full`: every non-idle task stalled.
    Full,
}

impl StallKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Some => "some",
            Self::Full => "full",
        }
    }
}

/// PSI errors.
#[derive(Debug, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum PsiError {
    /// No such pressure file, or PSI is disabled in this kernel (`psi=0`).
    NotSupported {
        /// The file.
        path: PathBuf,
    },
    /// The file is not on procfs or cgroup2, so it cannot hold a trigger
    /// (it may still be sampled).
    NotPressureFile {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but a trigger may not be written to it.
    PermissionDenied {
        /// The file.
        path: PathBuf,
    },
    /// The kernel rejected the trigger (bad window or threshold).
    InvalidTrigger {
        /// What was written.
        trigger: String,
    },
    /// A malformed line.
    Parse {
        /// The offending line.
        line: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// The monitored cgroup went away (`POLLERR`).
    Gone,
    /// Any other I/O error (`errno` and message).
    Io {
        /// `errno`, if known.
        errno: Option<i32>,
        /// The message.
        message: String,
    },
}

impl fmt::Display for PsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported { path } => {
                write!(f, "PSI not available at {}", path.display())
            }
            Self::NotPressureFile { path } => {
                write!(f, "{} is not on procfs or cgroup2", path.display())
            }
            Self::PermissionDenied { path } => {
                write!(
                    f,
                    "no permission to arm a PSI trigger on {}",
                    path.display()
                )
            }
            Self::InvalidTrigger { trigger } => {
                write!(f, "kernel rejected PSI trigger {trigger:?}")
            }
            Self::Parse { line, reason } => write!(f, "bad pressure line {line:?}: {reason}"),
            Self::Gone => f.write_str("the monitored cgroup went away"),
            Self::Io { errno, message } => write!(f, "I/O error (errno {errno:?}): {message}"),
        }
    }
}

impl std::error::Error for PsiError {}

fn io_error(path: &Path, e: &std::io::Error) -> PsiError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) | Some(libc::ENOTDIR) => {
            PsiError::NotSupported {
                path: path.to_path_buf(),
            }
        }
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => PsiError::PermissionDenied {
            path: path.to_path_buf(),
        },
        errno => PsiError::Io {
            errno,
            message: e.to_string(),
        },
    }
}

fn parse_line(line: &str) -> Result<(StallKind, PressureLine), PsiError> {
    let bad = |reason| PsiError::Parse {
        line: line.to_string(),
        reason,
    };
    let mut words = line.split_whitespace();
    let kind = match words.next() {
        Some("some") => StallKind::Some,
        Some("full") => StallKind::Full,
        _ => return Err(bad("expected \"some\" or \"full\"")),
    };
    let (mut a10, mut a60, mut a300, mut total) = (None, None, None, None);
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(|| bad("expected key=value"))?;
        match k {
            "avg10" => a10 = Some(v.parse::<f64>().map_err(|_| bad("bad avg10"))?),
            "avg60" => a60 = Some(v.parse::<f64>().map_err(|_| bad("bad avg60"))?),
            "avg300" => a300 = Some(v.parse::<f64>().map_err(|_| bad("bad avg300"))?),
            "total" => total = Some(v.parse::<u64>().map_err(|_| bad("bad total"))?),
            _ => {} // newer kernels may add fields
        }
    }
    Ok((
        kind,
        PressureLine {
            avg10: a10.ok_or_else(|| bad("missing avg10"))?,
            avg60: a60.ok_or_else(|| bad("missing avg60"))?,
            avg300: a300.ok_or_else(|| bad("missing avg300"))?,
            total_us: total.ok_or_else(|| bad("missing total"))?,
        },
    ))
}

/// Parses the contents of a pressure file.
pub fn parse_pressure(text: &str) -> Result<Pressure, PsiError> {
    let mut some = None;
    let mut full = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(line)? {
            (StallKind::Some, l) => some = Some(l),
            (StallKind::Full, l) => full = Some(l),
        }
    }
    Ok(Pressure {
        some: some.ok_or(PsiError::Parse {
            line: text.to_string(),
            reason: "no \"some\" line",
        })?,
        full,
    })
}

/// Reads and parses a pressure file.
pub fn read_pressure(path: impl AsRef<Path>) -> Result<Pressure, PsiError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, &e))?;
    parse_pressure(&text)
}

/// Reads `/proc/pressure/memory`.
pub fn system_memory_pressure() -> Result<Pressure, PsiError> {
    read_pressure(PROC_PRESSURE_MEMORY)
}

/// The cgroup v2 path of this process from `/proc/self/cgroup` contents
/// (the `0::/path` line), if any.
pub fn parse_cgroup2_path(proc_self_cgroup: &str) -> Option<&str> {
    proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
}

/// This process's cgroup v2 `memory.pressure` file, if one exists: looks
/// under `/sys/fs/cgroup` (unified mount) and `/sys/fs/cgroup/unified`
/// (hybrid mount).
pub fn cgroup_memory_pressure_path() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = parse_cgroup2_path(&text)?.trim_start_matches('/');
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(|base| Path::new(base).join(rel).join("memory.pressure"))
        .find(|p| p.exists())
}

/// An armed kernel PSI trigger: `POLLPRI` on its descriptor when the stall
/// threshold is crossed within the window. Disarmed when dropped.
#[derive(Debug)]
pub struct PsiTrigger {
    file: File,
    path: PathBuf,
    spec: String,
}

impl PsiTrigger {
    /// Arms `"<kind> <stall_us> <window_us>"` on `path` (a `*.pressure` file).
    pub fn new(
        path: impl AsRef<Path>,
        kind: StallKind,
        stall: Duration,
        window: Duration,
    ) -> Result<Self, PsiError> {
        let path = path.as_ref();
        let spec = format!(
            "{} {} {}",
            kind.as_str(),
            stall.as_micros(),
            window.as_micros()
        );
        if stall > window || window < Duration::from_millis(500) || window > Duration::from_secs(10)
        {
            return Err(PsiError::InvalidTrigger { trigger: spec });
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| io_error(path, &e))?;
        // Writing a trigger to an ordinary file would "succeed" and never fire.
        let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: the fd is open (owned by `file`) and `st` is a writable
        // statfs buffer; read only after success. Checked by
        // tests/psi.rs::sampling_fallback_fires_over_the_threshold.
        if unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(io_error(path, &e));
        }
        // SAFETY: fstatfs returned 0, so it initialized `st`.
        // `f_type`'s width differs between libcs.
        #[allow(clippy::unnecessary_cast)]
        let magic = unsafe { st.assume_init() }.f_type as i64;
        if magic != PROC_SUPER_MAGIC && magic != CGROUP2_SUPER_MAGIC {
            return Err(PsiError::NotPressureFile {
                path: path.to_path_buf(),
            });
        }
        // The kernel wants the trigger in one write, NUL-terminated.
        let mut buf = spec.clone().into_bytes();
        buf.push(0);
        if let Err(e) = file.write_all(&buf) {
            return Err(match e.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::EBUSY) => {
                    PsiError::InvalidTrigger { trigger: spec }
                }
                _ => io_error(path, &e),
            });
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            spec,
        })
    }

    /// The file the trigger is armed on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was written to arm it.
    pub fn spec(&self) -> &str {
        &self.spec
    }
}

impl AsRawFd for PsiTrigger {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// What wakes a [`PressureReclaimer`].
#[derive(Debug)]
pub enum PressureSource {
    /// A kernel PSI trigger (`POLLPRI`).
    Trigger(PsiTrigger),
    /// Any readable descriptor, e.g. a pipe or an eventfd someone writes to
    /// (`POLLIN`; the reclaimer drains it).
    Fd(OwnedFd),
    /// Fallback without triggers: read `path` every `interval` and fire when
    /// `some avg10` is at least `avg10_threshold` percent.
    Sample {
        /// The pressure file.
        path: PathBuf,
        /// Sampling interval.
        interval: Duration,
        /// Threshold, percent.
        avg10_threshold: f64,
    },
}

impl PressureSource {
    /// A kernel trigger on `path` if one can be armed, else sampling `path`
    /// every second against `avg10_threshold` (the fallback); returns the
    /// trigger error that caused the fallback, if any.
    pub fn trigger_or_sample(
        path: impl AsRef<Path>,
        stall: Duration,
        window: Duration,
        avg10_threshold: f64,
    ) -> Result<(Self, Option<PsiError>), PsiError> {
        let path = path.as_ref();
        match PsiTrigger::new(path, StallKind::Some, stall, window) {
            Ok(t) => Ok((Self::Trigger(t), None)),
            Err(e @ PsiError::NotSupported { .. }) => Err(e),
            Err(e) => {
                read_pressure(path)?;
                Ok((
                    Self::Sample {
                        path: path.to_path_buf(),
                        interval: Duration::from_secs(1),
                        avg10_threshold,
                    },
                    Some(e),
                ))
            }
        }
    }
}

/// Counters of a [`PressureReclaimer`].
#[derive(Debug, Default)]
pub struct ReclaimerStats {
    events: AtomicU64,
    freed: AtomicU64,
}

impl ReclaimerStats {
    /// Pressure events handled.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
    /// Objects freed by the reclaims they ran.
    pub fn freed(&self) -> u64 {
        self.freed.load(Ordering::Relaxed)
    }
}

/// Callback run after each pressure-triggered reclaim.
pub type OnReclaim = Box<dyn FnMut(&ReclaimReport) + Send>;

/// A background thread that reclaims `goal` objects (from `target`'s
/// subtree, or globally) each time its source fires. Stopped through a pipe,
/// so [`PressureReclaimer::stop`] returns promptly.
#[derive(Debug)]
pub struct PressureReclaimer {
    stop_w: Option<File>,
    thread: Option<JoinHandle<Result<(), PsiError>>>,
    stats: Arc<ReclaimerStats>,
}

fn pipe() -> Result<(File, File), PsiError> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid, writable array of two ints, as pipe2 needs;
    // checked by tests/psi.rs::reclaimer_runs_on_fd_events_and_stops.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(PsiError::Io {
            errno: e.raw_os_error(),
            message: e.to_string(),
        });
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by
    // nobody else; each File takes ownership of exactly one.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Polls `fd` (for `events`) and `stop` (POLLIN) with `timeout_ms` (-1:
/// forever). Returns (fd revents, stop readable).
fn poll2(
    fd: Option<RawFd>,
    events: i16,
    stop: RawFd,
    timeout_ms: i32,
) -> Result<(i16, bool), PsiError> {
    let mut fds = [
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: fd.unwrap_or(-1),
            events,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two pollfd for the duration of
        // the call (a negative fd is ignored by poll); checked by
        // tests/psi.rs::reclaimer_runs_on_fd_events_and_stops.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if rc >= 0 {
            return Ok((fds[1].revents, fds[0].revents != 0));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(PsiError::Io {
                errno: e.raw_os_error(),
                message: e.to_string(),
            });
        }
    }
}

impl PressureReclaimer {
    /// Starts the thread. `target` `None` reclaims globally.
    pub fn spawn(
        registry: Registry,
        source: PressureSource,
        target: Option<Memcg>,
        goal: u64,
        mut on_reclaim: Option<OnReclaim>,
    ) -> Result<Self, PsiError> {
        let (stop_r, stop_w) = pipe()?;
        let stats = Arc::new(ReclaimerStats::default());
        let st = stats.clone();
        let mut reclaim = move || {
            let r = match &target {
                Some(m) => reclaim_memcg(&registry, m, goal),
                None => reclaim_global(&registry, goal),
            };
            st.events.fetch_add(1, Ordering::Relaxed);
            if let Ok(r) = r {
                st.freed.fetch_add(r.freed, Ordering::Relaxed);
                if let Some(cb) = on_reclaim.as_mut() {
                    cb(&r);
                }
            }
        };
        let thread = std::thread::Builder::new()
            .name("psi-reclaim".into())
            .spawn(move || -> Result<(), PsiError> {
                let stop = stop_r.as_raw_fd();
                match source {
                    PressureSource::Trigger(t) => loop {
                        let (rev, stopped) = poll2(Some(t.as_raw_fd()), libc::POLLPRI, stop, -1)?;
                        if stopped {
                            return Ok(());
                        }
                        if rev & libc::POLLERR != 0 {
                            return Err(PsiError::Gone);
                        }
                        if rev & libc::POLLPRI != 0 {
                            reclaim();
                        }
                    },
                    PressureSource::Fd(fd) => {
                        let mut file = File::from(fd);
                        let mut buf = [0u8; 64];
                        loop {
                            let (rev, stopped) =
                                poll2(Some(file.as_raw_fd()), libc::POLLIN, stop, -1)?;
                            if stopped {
                                return Ok(());
                            }
                            if rev & (libc::POLLIN | libc::POLLHUP) != 0 {
                                // Drain; 0 bytes means the writer closed.
                                match file.read(&mut buf) {
                                    Ok(0) => return Ok(()),
                                    Ok(_) => reclaim(),
                                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                    Err(e) => {
                                        return Err(PsiError::Io {
                                            errno: e.raw_os_error(),
                                            message: e.to_string(),
                                        })
                                    }
                                }
                            }
                        }
                    }
                    PressureSource::Sample {
                        path,
                        interval,
                        avg10_threshold,
                    } => loop {
                        let ms = i32::try_from(interval.as_millis()).unwrap_or(i32::MAX);
                        let (_, stopped) = poll2(None, 0, stop, ms)?;
                        if stopped {
                            return Ok(());
                        }
                        if read_pressure(&path)?.some.avg10 >= avg10_threshold {
                            reclaim();
                        }
                    },
                }
            })
            .map_err(|e| PsiError::Io {
                errno: e.raw_os_error(),
                message: e.to_string(),
            })?;
        Ok(Self {
            stop_w: Some(stop_w),
            thread: Some(thread),
            stats,
        })
    }

    /// Counters.
    pub fn stats(&self) -> &ReclaimerStats {
        &self.stats
    }

    /// Stops the thread and returns how it ended (an error it hit, if any).
    pub fn stop(mut self) -> Result<(), PsiError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), PsiError> {
        if let Some(mut w) = self.stop_w.take() {
            let _ = w.write_all(&[1]);
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(PsiError::Io {
                    errno: None,
                    message: "reclaimer thread panicked".into(),
                })
            }),
            None => Ok(()),
        }
    }
}

impl Drop for PressureReclaimer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
