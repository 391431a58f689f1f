//! Detection and limit files on fake cgroup mounts (plain directories).

use super::*;
use std::fs::File;

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).expect("read")
}

fn line(version: &str, mount: &Path, options: &str) -> String {
    format!("30 20 0:26 / {} rw,nosuid - {version} cgroup {options}\n", mount.display())
}

const SHARE: Share = Share { cpu_cores: 16, memory_gib: 90 };

#[test]
fn v2_limits_are_written_from_the_instance_share() {
    let mount = tempfile::tempdir().unwrap();
    std::fs::write(mount.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
    let cgroups = Cgroups::from_mountinfo(&line("cgroup2", mount.path(), "rw"), 77, false);
    assert_eq!(cgroups.limits(), [Limit::Memory, Limit::Pids, Limit::Cpu]);
    assert!(cgroups.refusal().is_none());
    let parent = mount.path().join("gpuspot");
    assert_eq!(read(mount.path().join("cgroup.subtree_control")), "+memory +pids +cpu");
    assert_eq!(read(parent.join("cgroup.subtree_control")), "+memory +pids +cpu");

    let dir = parent.join("i-abc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("memory.swap.max"), "max").unwrap();
    let cgroup = cgroups.create(&InstanceId::from("i-abc"), SHARE).expect("cgroup");
    assert_eq!(cgroup.dirs(), std::slice::from_ref(&dir));
    assert_eq!(read(dir.join("cpu.max")), "1600000 100000");
    assert_eq!(read(dir.join("memory.max")), (90u64 << 30).to_string());
    assert_eq!(read(dir.join("pids.max")), "77");
    assert_eq!(read(dir.join("memory.swap.max")), "0", "no swap beyond the memory limit");
    assert!(cgroup.procs_fds()[0] >= 0 && cgroup.procs_fds()[1] == -1);
    std::fs::write(dir.join("memory.events"), "low 0\noom 2\noom_kill 1\n").unwrap();
    assert_eq!(cgroup.oom_kills(), 1);
}

#[test]
fn v1_controllers_each_get_their_dir_and_memsw_when_present() {
    let root = tempfile::tempdir().unwrap();
    let mount = |name: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(dir.join("gpuspot/i-1")).unwrap();
        dir
    };
    let (memory, pids, cpu, systemd) =
        (mount("memory"), mount("pids"), mount("cpu,cpuacct"), mount("systemd"));
    std::fs::write(memory.join("gpuspot/i-1/memory.memsw.limit_in_bytes"), "").unwrap();
    let mountinfo = [
        line("cgroup", &systemd, "rw,xattr,name=systemd"),
        line("cgroup", &memory, "rw,memory"),
        line("cgroup", &pids, "rw,pids"),
        line("cgroup", &cpu, "rw,cpu,cpuacct"),
        line("cgroup", &memory, "rw,memory"), // mounted twice: used once
        line("cgroup2", &root.path().join("unified"), "rw"), // no controllers file: skipped
    ]
    .concat();
    std::fs::create_dir_all(root.path().join("unified")).unwrap();
    std::fs::write(root.path().join("unified/cgroup.controllers"), "\n").unwrap();
    let cgroups = Cgroups::from_mountinfo(&mountinfo, 64, false);
    assert_eq!(cgroups.limits(), [Limit::Memory, Limit::Pids, Limit::Cpu]);
    let cgroup = cgroups.create(&InstanceId::from("i-1"), Share { cpu_cores: 2, memory_gib: 1 });
    let cgroup = cgroup.expect("cgroup");
    assert_eq!(cgroup.dirs().len(), 3);
    assert!(cgroup.procs_fds().iter().all(|fd| *fd >= 0));
    let m = memory.join("gpuspot/i-1");
    assert_eq!(read(m.join("memory.limit_in_bytes")), (1u64 << 30).to_string());
    assert_eq!(read(m.join("memory.memsw.limit_in_bytes")), (1u64 << 30).to_string());
    assert_eq!(read(pids.join("gpuspot/i-1/pids.max")), "64");
    assert_eq!(read(cpu.join("gpuspot/i-1/cpu.cfs_quota_us")), "200000");
    assert_eq!(read(cpu.join("gpuspot/i-1/cpu.cfs_period_us")), "100000");
    assert!(!cpu.join("gpuspot/i-1/memory.memsw.limit_in_bytes").exists());
    assert!(!m.join("memory.swappiness").exists(), "a file the kernel lacks is skipped");
    std::fs::write(m.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
        .unwrap();
    assert_eq!(cgroup.oom_kills(), 3);
}

#[test]
fn nothing_enforceable_refuses_unless_unlimited_ok() {
    let root = tempfile::tempdir().unwrap();
    let systemd = line("cgroup", &root.path().join("systemd"), "rw,name=systemd");
    let refused = Cgroups::from_mountinfo(&systemd, 64, false);
    assert!(!refused.enforced());
    let reason = refused.refusal().expect("refused");
    assert!(reason.contains("unlimited_ok"), "{reason}");
    let allowed = Cgroups::from_mountinfo(&systemd, 64, true);
    assert!(allowed.refusal().is_none() && !allowed.enforced());
    assert!(allowed.create(&InstanceId::from("i-1"), SHARE).is_none());
    assert!(Cgroups::disabled().refusal().is_none());
}

#[test]
fn zero_shares_mean_no_limit() {
    let none = Share { cpu_cores: 0, memory_gib: 0 };
    assert_eq!(limit_files(Version::V2, Limit::Cpu, none, 1)[0].1, "max 100000");
    assert_eq!(limit_files(Version::V2, Limit::Memory, none, 1)[0].1, "max");
    assert_eq!(limit_files(Version::V1, Limit::Memory, none, 1)[0].1, "-1");
    assert_eq!(limit_files(Version::V1, Limit::Cpu, none, 1)[1].1, "-1");
}

#[test]
fn only_old_empty_instance_cgroups_are_removed_as_stale() {
    let parent = tempfile::tempdir().unwrap();
    let dir = |name: &str, age: Duration, procs: &str| {
        let dir = parent.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        if !procs.is_empty() {
            std::fs::write(dir.join("cgroup.procs"), procs).unwrap();
        }
        let when = std::time::SystemTime::now() - age;
        File::open(&dir).unwrap().set_modified(when).unwrap();
        dir
    };
    let hour = Duration::from_secs(3600);
    let (stale, young, busy) =
        (dir("i-stale", hour, ""), dir("i-young", Duration::ZERO, ""), dir("i-busy", hour, "42\n"));
    remove_stale(parent.path());
    assert!(!stale.exists(), "an old empty cgroup stays");
    assert!(young.exists() && busy.exists());
}

/// A kernel whose mount table is given and whose kills are only recorded.
#[derive(Debug, Default)]
struct FakeKernel {
    mountinfo: String,
    killed: std::sync::Mutex<Vec<i32>>,
}

impl CgroupOs for FakeKernel {
    fn mountinfo(&self) -> String {
        self.mountinfo.clone()
    }

    fn kill(&self, pid: i32) {
        self.killed.lock().unwrap().push(pid);
    }
}

fn kernel(mountinfo: String) -> &'static FakeKernel {
    Box::leak(Box::new(FakeKernel { mountinfo, ..Default::default() }))
}

#[test]
fn at_the_end_v1_members_are_killed_one_by_one_and_v2_through_cgroup_kill() {
    let (v1, v2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(v2.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
    let mounts = line("cgroup", v1.path(), "rw,pids") + &line("cgroup2", v2.path(), "rw");
    let os = kernel(mounts);
    let cgroups = Cgroups::detect_on(os, 64, false);
    assert_eq!(cgroups.limits(), [Limit::Pids, Limit::Memory, Limit::Cpu]);
    let cgroup = cgroups.create(&InstanceId::from("i-k"), SHARE).expect("cgroup");
    let (v1_dir, v2_dir) = (v1.path().join("gpuspot/i-k"), v2.path().join("gpuspot/i-k"));
    assert_eq!(cgroup.dirs(), [v1_dir.clone(), v2_dir.clone()]);
    std::fs::write(v1_dir.join("cgroup.procs"), "1\n4242\n4343\n").unwrap();
    std::fs::write(v2_dir.join("cgroup.procs"), "5151\n").unwrap();
    std::fs::write(v2_dir.join("cgroup.kill"), "").unwrap();

    cgroup.kill_all();
    assert_eq!(*os.killed.lock().unwrap(), [4242, 4343], "v1 members, never init; v2 none");
    assert_eq!(read(v2_dir.join("cgroup.kill")), "1", "v2 kills its members itself");
    assert_eq!(read(v1_dir.join("pids.max")), "64");
    assert_eq!(read(v2_dir.join("cpu.max")), "1600000 100000");
}
