//! The process's own resource use as Prometheus's client libraries name it
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`, ...), read from
//! `/proc/self` at scrape time. Elsewhere than Linux, or when `/proc` cannot be read,
//! the series are left out rather than failing the scrape.

/// Clock ticks per second of the times in `/proc/<pid>/stat`: the kernel reports them in
/// USER_HZ, which is 100 on every architecture Linux exports to user space.
const USER_HZ: f64 = 100.0;

/// What one reading of `/proc/self` found; each field is `None` when its file could not
/// be read or parsed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    pub fn read() -> Self {
        let read = |path: &str| match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(err) => {
                tracing::debug!(path, %err, "cannot read process statistics");
                None
            }
        };
        let status = read("/proc/self/status");
        let stat = read("/proc/self/stat");
        let boot_time = read("/proc/stat").as_deref().and_then(boot_time_seconds);
        let times = stat.as_deref().and_then(stat_times);
        Self {
            resident_memory_bytes: status.as_deref().and_then(|s| status_kib(s, "VmRSS:")),
            virtual_memory_bytes: status.as_deref().and_then(|s| status_kib(s, "VmSize:")),
            cpu_seconds: times.map(|t| t.cpu_seconds),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as u64),
            max_fds: read("/proc/self/limits")
                .as_deref()
                .and_then(max_open_files),
            start_time_seconds: times
                .zip(boot_time)
                .map(|(t, boot)| boot + t.started_after_boot_seconds),
        }
    }
}

/// A `Vm...:` line of `/proc/<pid>/status` (in kB there), in bytes.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct StatTimes {
    cpu_seconds: f64,
    started_after_boot_seconds: f64,
}

/// utime + stime and starttime of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn stat_times(stat: &str) -> Option<StatTimes> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name: utime is field 14, stime 15, starttime 22.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    Some(StatTimes {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        started_after_boot_seconds: field(22)? / USER_HZ,
    })
}

/// `btime` of `/proc/stat`: when the machine booted, in Unix seconds.
fn boot_time_seconds(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// The soft limit of "Max open files" in `/proc/<pid>/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix_now() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    #[test]
    fn parses_the_proc_files_formats() {
        let status = "Name:\thookline\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2048 * 1024));
        assert_eq!(status_kib(status, "VmSize:"), Some(123_456 * 1024));
        assert_eq!(status_kib(status, "VmSwap:"), None);

        // A command name with a space and a parenthesis, as a process may name itself.
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 12345 1000000 500 18446744073709551615";
        let times = stat_times(stat).expect("parsed");
        assert!((times.cpu_seconds - 3.0).abs() < 1e-9, "{times:?}");
        assert!(
            (times.started_after_boot_seconds - 123.45).abs() < 1e-9,
            "{times:?}"
        );
        assert_eq!(stat_times("garbage"), None);

        assert_eq!(
            boot_time_seconds("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1.7e9)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read();
        assert!(
            stats.resident_memory_bytes.is_some_and(|b| b > 0),
            "{stats:?}"
        );
        assert!(
            stats.virtual_memory_bytes >= stats.resident_memory_bytes,
            "{stats:?}"
        );
        assert!(stats.open_fds.is_some_and(|n| n >= 3), "{stats:?}");
        assert!(stats.max_fds >= stats.open_fds, "{stats:?}");
        let started = stats.start_time_seconds.expect("a start time");
        assert!(started > 1.0e9 && started <= unix_now() + 1.0, "{stats:?}");
        assert!(stats.cpu_seconds.is_some_and(|s| s >= 0.0), "{stats:?}");
    }
}
