//! What the numbers were measured on: CPU, threads, kernel tier and SIMD features, load, and
//! the process's peak memory.

use serde::{Deserialize, Serialize};

/// The machine and build a benchmark ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo ("unknown" elsewhere).
    pub cpu: String,
    /// Logical CPUs this process may use.
    pub logical_cpus: usize,
    /// Threads the models ran with.
    pub threads: usize,
    /// The CPU's SIMD features that some kernel tier uses (tarjama and candle pick their
    /// kernels at run time).
    pub features: Vec<String>,
    /// The kernel tier tarjama's own kernels ran with (`avx512`, `avxvnni`, `avx2`,
    /// `scalar`; `TARJAMA_KERNELS` forces one).
    #[serde(default)]
    pub kernels: String,
    /// tarjama's version.
    pub version: String,
    /// `debug` or `release`.
    pub profile: String,
    /// 1-, 5- and 15-minute load averages when the benchmark started.
    pub load_start: Option<[f64; 3]>,
    /// The same when it ended: other work on the machine slows every number down.
    pub load_end: Option<[f64; 3]>,
}

impl Machine {
    /// Describes this machine now; `threads` is the `--threads` value, if any.
    pub fn detect(threads: Option<usize>) -> Self {
        let logical_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Machine {
            cpu: cpu_model().unwrap_or_else(|| "unknown".into()),
            logical_cpus,
            threads: threads.unwrap_or(logical_cpus),
            features: tarjama_kernels::cpu::features()
                .into_iter()
                .map(String::from)
                .collect(),
            kernels: tarjama_kernels::cpu::Tier::active().name().into(),
            version: env!("CARGO_PKG_VERSION").into(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .into(),
            load_start: load_average(),
            load_end: None,
        }
    }
}

/// The CPU's name, from /proc/cpuinfo.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The load averages from /proc/loadavg.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// This process's peak resident set size in bytes (`VmHWM` in /proc/self/status).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_bytes() {
        let status = "Name:\ttarjama\nVmPeak:\t  10 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
    }

    #[test]
    fn this_process_has_a_peak() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().unwrap() > 0);
        }
    }
}
