//! How many threads a forward pass gets by default (`std` only): one per physical core the
//! process may run on, and on a CPU with cores of different speeds only the fast ones.
//!
//! - **Hardware threads.** The threads of one core (SMT, Hyper-Threading) share its SIMD
//!   units, which the int8 kernels keep busy: a second thread per core adds its share of
//!   every parallel loop's synchronisation and halves each thread's cache, for little more
//!   arithmetic. ONNX Runtime and llama.cpp default to physical cores for the same reason.
//! - **big.LITTLE** (RK3588 boards: 4 Cortex-A76 at 2.4 GHz + 4 in-order Cortex-A55 at
//!   1.8 GHz; phones). The GEMMs that feed a row-wise step are cut into one equal part per
//!   thread (`model/forward.rs`), so every thread waits for the slowest core: with `m` rows,
//!   four A76 take `m/4` row-times, eight cores `m/8 · r` where an A55 is `r` times slower,
//!   which loses as soon as `r > 2`. Linux gives each CPU's relative capacity in
//!   `cpu_capacity` (1024 for the fastest); CPUs below half the fastest are left out.
//!
//! On Linux the CPUs come from the affinity mask (`/proc/self/status`: `taskset`, cgroup
//! cpusets) and sysfs; elsewhere, or where any of those cannot be read, the count is
//! `std::thread::available_parallelism`, which also honours cgroup CPU quotas and bounds the
//! count in every case. Hand-written, a few lines: `num_cpus::get_physical` counts the whole
//! system's cores, not the affinity mask's, and no crate here reads `cpu_capacity`.

/// The default thread count ([`crate::threads::available`]).
pub(crate) fn default_threads() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, usize::from);
    #[cfg(target_os = "linux")]
    {
        let read = |path: String| std::fs::read_to_string(path).ok();
        let status = read("/proc/self/status".into());
        let allowed = status.as_deref().and_then(|s| s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")));
        let cpu = |cpu: usize, file: &str| read(format!("/sys/devices/system/cpu/cpu{cpu}/{file}"));
        let topology = Topology {
            siblings: &|c| cpu(c, "topology/core_cpus_list").or_else(|| cpu(c, "topology/thread_siblings_list")),
            capacity: &|c| cpu(c, "cpu_capacity"),
        };
        if let Some(cores) = allowed.and_then(|a| fast_cores(a, &topology)) {
            return cores.clamp(1, logical);
        }
    }
    logical
}

/// What sysfs says about one CPU: its hardware-thread siblings list (`core_cpus_list`) and
/// its capacity (`cpu_capacity`, absent on most x86 machines).
struct Topology<'a> {
    siblings: &'a dyn Fn(usize) -> Option<String>,
    capacity: &'a dyn Fn(usize) -> Option<String>,
}

/// The physical cores among the CPUs of `allowed` (a Linux CPU list such as `0-3,8`), a core
/// being identified by the lowest CPU of its siblings list; when every CPU states a capacity,
/// only those with at least half the largest. `None` if a list cannot be read.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn fast_cores(allowed: &str, topo: &Topology<'_>) -> Option<usize> {
    let cpus = cpu_list(allowed)?;
    let capacities: Option<Vec<u64>> = cpus.iter().map(|&c| (topo.capacity)(c)?.trim().parse().ok()).collect();
    let largest = capacities.as_ref().and_then(|caps| caps.iter().copied().max()).unwrap_or(0);
    let fast = |i: usize| capacities.as_ref().is_none_or(|caps| 2 * caps[i] >= largest);
    let mut cores = Vec::new();
    for (i, &cpu) in cpus.iter().enumerate() {
        if fast(i) {
            cores.push(*cpu_list(&(topo.siblings)(cpu)?)?.first()?);
        }
    }
    cores.sort_unstable();
    cores.dedup();
    (!cores.is_empty()).then_some(cores.len())
}

/// A Linux CPU list (`0-3,8,10-11`, as in sysfs and `/proc/self/status`), in order; `None`
/// if it does not parse or names more than 65536 CPUs.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        if b < a || cpus.len() + (b - a) >= 1 << 16 {
            return None;
        }
        cpus.extend(a..=b);
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::{String, ToString};

    /// A topology from two functions of the CPU number.
    fn count(
        allowed: &str,
        siblings: impl Fn(usize) -> Option<String>,
        capacity: impl Fn(usize) -> Option<String>,
    ) -> Option<usize> {
        fast_cores(allowed, &Topology { siblings: &siblings, capacity: &capacity })
    }

    #[test]
    fn cpu_lists_parse_as_linux_writes_them() {
        assert_eq!(cpu_list("0-3,8,10-11\n"), Some(std::vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(cpu_list("\t5"), Some(std::vec![5]));
        assert_eq!(cpu_list(""), Some(std::vec![]));
        for bad in ["3-1", "a", "0-", "1,,x", "0-99999999"] {
            assert_eq!(cpu_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn physical_cores_count_each_sibling_group_once() {
        let none = |_: usize| None;
        // 8 CPUs, two hardware threads per core, siblings numbered as on Intel (n and n+4).
        let smt = |cpu: usize| (cpu < 8).then(|| format!("{},{}\n", cpu % 4, cpu % 4 + 4));
        assert_eq!(count("0-7", smt, none), Some(4));
        assert_eq!(count("0,4", smt, none), Some(1));
        assert_eq!(count("1-2,6", smt, none), Some(2));
        // As numbered on AMD (2n and 2n+1), and without SMT.
        let pairs = |cpu: usize| Some(format!("{}-{}", cpu & !1, cpu | 1));
        assert_eq!(count("0-15", pairs, none), Some(8));
        assert_eq!(count("0-3", |cpu: usize| Some(cpu.to_string()), none), Some(4));
        // An unreadable topology gives up rather than guess.
        assert_eq!(count("0-8", smt, none), None);
        assert_eq!(count("", smt, none), None);
    }

    #[test]
    fn big_little_counts_the_big_cores() {
        let own = |cpu: usize| Some(cpu.to_string());
        // RK3588: CPUs 0-3 Cortex-A55 (capacity 414), 4-7 Cortex-A76 (1024).
        let rk3588 = |cpu: usize| Some(if cpu < 4 { "414\n" } else { "1024\n" }.to_string());
        assert_eq!(count("0-7", own, rk3588), Some(4));
        // Only little cores allowed: they are the fastest the process has.
        assert_eq!(count("0-3", own, rk3588), Some(4));
        assert_eq!(count("2-5", own, rk3588), Some(2));
        // Three clusters (1 × 1024, 3 × 870, 4 × 260): the two fast ones.
        let tri = |cpu: usize| {
            Some(
                match cpu {
                    0..4 => "260",
                    4..7 => "870",
                    _ => "1024",
                }
                .to_string(),
            )
        };
        assert_eq!(count("0-7", own, tri), Some(4));
        // A Raspberry Pi 5: four equal cores.
        assert_eq!(count("0-3", own, |_| Some("1024".into())), Some(4));
        // A capacity missing on one CPU or unreadable: all physical cores count.
        assert_eq!(count("0-7", own, |cpu: usize| (cpu > 0).then(|| "1024".into())), Some(8));
        assert_eq!(count("0-7", own, |_| Some("fast".into())), Some(8));
    }
}
