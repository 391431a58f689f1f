//! What each step of a process guest's start costs (docs/contracts.md#guests "Cost of a start"):
//! wall time and the CPU time of the thread that runs it (`RUSAGE_THREAD`: system calls included,
//! helper processes such as `mkfs.ext4` or `slirp4netns` not), logged as one debug line per start
//! (`RUST_LOG=gpuspot_agent::runtime::timing=debug`).

use std::fmt::Write;
use std::time::{Duration, Instant};

pub struct StartTimer {
    last: (Instant, Duration),
    steps: String,
    total: (Duration, Duration),
}

/// CPU time of the calling thread so far.
fn thread_cpu() -> Duration {
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

impl StartTimer {
    pub fn new() -> Self {
        Self {
            last: (Instant::now(), thread_cpu()),
            steps: String::new(),
            total: Default::default(),
        }
    }

    /// Ends the step called `name`.
    pub fn step(&mut self, name: &str) {
        let now = (Instant::now(), thread_cpu());
        let (wall, cpu) = (now.0 - self.last.0, now.1.saturating_sub(self.last.1));
        let _ = write!(self.steps, " {name}={}/{}us", wall.as_micros(), cpu.as_micros());
        self.total = (self.total.0 + wall, self.total.1 + cpu);
        self.last = now;
    }

    pub fn log(&self, instance: &gpuspot_common::InstanceId) {
        tracing::debug!(%instance, wall_us = self.total.0.as_micros() as u64,
            cpu_us = self.total.1.as_micros() as u64, "start steps (wall/cpu):{}", self.steps);
    }
}
