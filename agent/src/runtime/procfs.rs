//! What `/proc` says about the machine's processes: their pids and the uids they run under.

/// Every pid in /proc.
pub fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
}

/// Every uid (real, effective, saved or filesystem) some process runs under.
pub fn uids_in_use() -> std::collections::HashSet<u32> {
    all_pids().filter_map(process_uids).flatten().collect()
}

/// The four uids of `/proc/<pid>/status`; authoritative even for processes that made
/// themselves non-dumpable (whose `/proc/<pid>` is then owned by root).
pub fn process_uids(pid: i32) -> Option<[u32; 4]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let mut ids = line.split_whitespace().filter_map(|n| n.parse::<u32>().ok());
    Some([ids.next()?, ids.next()?, ids.next()?, ids.next()?])
}
