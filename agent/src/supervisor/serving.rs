//! What the supervisor knows about guests that serve (docs/contracts.md#serving): whether their
//! host ports are free before they start (a start whose port is held is refused, not failed), what
//! their readiness probes target, and, on simulated hosts, the GPU utilisation a guest sets for its
//! GPUs by writing a percentage to `$GPUSPOT_DATA_DIR/.gpu_utilization` (so that tests can drive
//! autoscaling).

use super::{Followup, Supervisor};
use crate::probes::ProbeTarget;
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{PortMapping, StartRefusal};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The file a guest on a simulated host writes its GPUs' utilisation into.
pub const SIMULATED_UTILIZATION_FILE: &str = ".gpu_utilization";

/// The first host port of an assignment that another program holds, and the bind error:
/// the guest would fail to listen, or its container to start. The coordinator is told
/// (a [`StartRefusal::PortBusy`]) and sends the start again with another port.
pub(super) fn busy_port(ports: &[PortMapping]) -> Option<(u16, std::io::Error)> {
    ports.iter().find_map(|port| {
        std::net::TcpListener::bind(("0.0.0.0", port.host)).err().map(|error| (port.host, error))
    })
}

/// The refusal of `id`'s start when one of its host ports is held.
pub(super) fn port_refusal(id: &InstanceId, ports: &[PortMapping]) -> Option<Followup> {
    let (port, error) = busy_port(ports)?;
    Some(refusal(id, port, &error))
}

/// The refusal of `id`'s start because host port `port` is held (`error` says how).
pub(super) fn refusal(id: &InstanceId, port: u16, error: &dyn std::fmt::Display) -> Followup {
    let reason = format!(
        "host port {port} is not free on this host ({error}): another program holds a port \
         of the agent's [ports] range"
    );
    tracing::warn!(instance = %id, port, %reason, "start refused");
    Followup::Refuse { instance_id: id.clone(), code: StartRefusal::PortBusy { port }, reason }
}

impl Supervisor {
    /// The refusal of a start whose host ports another program holds; never for a runtime
    /// whose guests bind no port (the fake one).
    pub(super) fn port_refusal(&self, id: &InstanceId, ports: &[PortMapping]) -> Option<Followup> {
        self.runtime.binds_host_ports().then(|| port_refusal(id, ports)).flatten()
    }

    /// The probes of the running workloads that have one.
    pub fn probe_targets(&self) -> Vec<ProbeTarget> {
        (self.workloads.running())
            .filter_map(|(id, w)| {
                let (port, probe) = w.probe.clone()?;
                Some(ProbeTarget { instance_id: id.clone(), port, probe })
            })
            .collect()
    }

    /// Simulated hosts only: the utilisation each guest set for its GPUs, by GPU UUID.
    pub fn simulated_utilization(&self) -> HashMap<String, u32> {
        let mut by_gpu = HashMap::new();
        for (_, workload) in self.workloads.running() {
            let Some(percent) = read_percent(&workload.data_dir.join(SIMULATED_UTILIZATION_FILE))
            else {
                continue;
            };
            for uuid in &workload.gpu_uuids {
                by_gpu.insert(uuid.clone(), percent);
            }
        }
        by_gpu
    }
}

/// A whole percentage 0-100 from a small regular file the guest owns; the file is the
/// guest's, so it is opened without following links and read at most 16 bytes of.
fn read_percent(path: &Path) -> Option<u32> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(16).read_to_string(&mut text).ok()?;
    let value: f64 = text.trim().parse().ok()?;
    (0.0..=100.0).contains(&value).then_some(value.round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_read_and_nonsense_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join(SIMULATED_UTILIZATION_FILE);
        for (text, expected) in
            [("80\n", Some(80)), ("33.6", Some(34)), ("101", None), ("x", None), ("-1", None)]
        {
            std::fs::write(&file, text).unwrap();
            assert_eq!(read_percent(&file), expected, "{text:?}");
        }
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        std::fs::write(&file, "50").unwrap();
        assert_eq!(read_percent(&link), None, "links are not followed");
        assert_eq!(read_percent(tmp.path()), None, "a directory is no percentage");
    }

    #[test]
    fn a_held_port_is_refused_with_its_number() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let ports = [PortMapping { host: port, guest: None }];
        let id = InstanceId::from("i-1");
        let Some(Followup::Refuse { code, reason, .. }) = port_refusal(&id, &ports) else {
            panic!("no refusal for a held port");
        };
        assert_eq!(code, StartRefusal::PortBusy { port });
        assert!(reason.contains(&port.to_string()), "{reason}");
        drop(held);
        assert!(busy_port(&ports).is_none());
    }

    #[tokio::test]
    async fn the_fake_runtime_starts_whatever_ports_are_held_and_binds_none() {
        let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let tmp = tempfile::tempdir().unwrap();
        let (tx, _events) = tokio::sync::mpsc::unbounded_channel();
        let runtime = std::sync::Arc::new(crate::runtime::FakeRuntime::new(tx));
        std::fs::create_dir_all(tmp.path().join("s")).unwrap();
        let mut supervisor =
            Supervisor::new(runtime.clone(), tmp.path().join("state"), tmp.path().join("s"))
                .with_data_disks(crate::runtime::DataDisks::disabled());
        let mut assignment = super::super::tests::assignment("i-1", false, None);
        assignment.ports = vec![PortMapping { host: port, guest: None }];
        assignment.snapshot = None;
        let followup = supervisor.start(assignment);
        assert!(matches!(followup.as_slice(), [Followup::Report(_)]), "{followup:?}");
        assert_eq!(runtime.started().len(), 1, "started on a port another program holds");
    }
}
