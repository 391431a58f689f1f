//! Starting a process guest: its data disk, uid, files, namespaces and network, cgroups,
//! the watched spawn, and the record a restarted agent adopts it from.

use super::guest::{Guest, Inner};
use super::sandbox::Sandbox;
use super::spawn::{Identity, guest_env, spawn_watched};
use super::watcher::Watcher;
use crate::runtime::cgroup::{InstanceCgroup, Share};
use crate::runtime::network::{GuestNet, NetError};
use crate::runtime::record::{self, ProcRef, ProcessRecord};
use crate::runtime::uids::GuestIds;
use crate::runtime::{RuntimeError, WorkloadSpec};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A guest's files, ready for its spawn.
struct Files {
    /// `<instance>/`, where its records go.
    dir: PathBuf,
    ids: Option<GuestIds>,
    /// Its output log, opened for appending.
    output: File,
    /// Where its watcher writes the workload's pid and exit status.
    status_path: PathBuf,
    status: File,
}

impl Inner {
    /// Prepares the guest's files, spawns it and records it.
    pub(super) fn launch(&self, spec: &WorkloadSpec) -> Result<Guest, RuntimeError> {
        let mut timer = super::timing::StartTimer::new();
        let files = self.files(spec, &mut timer)?;
        // Namespaces need root, as own uids do.
        let (sandbox, net) = match files.ids {
            Some(ids) => self.sandbox_for(spec, &files.dir, ids.gid)?,
            None => (None, None),
        };
        timer.step("sandbox+net");
        let namespaced = sandbox.is_some();
        let net_helper = net.map(|net| net.helper);
        let share = Share { cpu_cores: spec.cpu_cores, memory_gib: spec.memory_gib };
        let cgroup = self.options.cgroups.create(&spec.instance_id, share);
        timer.step("cgroup");
        let env = guest_env(spec);
        let cgroup_procs =
            cgroup.as_ref().map_or(crate::runtime::cgroup::NO_PROCS, |c| c.procs_fds());
        let identity = Identity { ids: files.ids, cgroup_procs };
        let child = match spawn_watched(spec, &env, identity, sandbox, &files.output, &files.status)
        {
            Ok(child) => child,
            Err(error) => {
                self.undo(cgroup, net_helper);
                return Err(error);
            }
        };
        let cgroups = cgroup.as_ref().map(InstanceCgroup::dirs).unwrap_or_default();
        let record = ProcessRecord {
            watcher: ProcRef::of(child.id().unwrap_or(0)),
            // The watcher wrote it before std's spawn could return.
            workload: ProcRef::of(record::read_status(&files.status_path).pid.unwrap_or(0)),
            namespaced,
            net_helper,
            cgroups,
            env,
            ..record_of(spec, files.ids)
        };
        timer.step("spawn");
        save_record(&record, &files.dir);
        timer.step("record");
        timer.log(&spec.instance_id);
        let id = spec.instance_id.clone();
        Ok(Guest { id, record, cgroup, watcher: Watcher::Child(child) })
    }

    /// The guest's data disk, uid, output log and status file.
    fn files(
        &self,
        spec: &WorkloadSpec,
        timer: &mut super::timing::StartTimer,
    ) -> Result<Files, RuntimeError> {
        let data_dir = &spec.data_dir;
        self.options.disks.prepare(data_dir, spec.data_disk_gib).map_err(prepare(data_dir))?;
        timer.step("disk");
        let output = open_private(&spec.log_path, false).map_err(prepare(&spec.log_path))?;
        let ids = self.options.isolation.claim(data_dir);
        let ids = ids.map_err(|e| prepare(data_dir)(std::io::Error::other(e)))?;
        timer.step("uid");
        super::guest_files::hand_over(data_dir, &spec.metadata_socket, ids)
            .map_err(prepare(data_dir))?;
        let dir = record::instance_dir(data_dir);
        let _ = std::fs::remove_file(dir.join(record::STOPPING));
        let status_path = dir.join(record::STATUS);
        let status = open_private(&status_path, true).map_err(prepare(&status_path))?;
        timer.step("files");
        Ok(Files { dir, ids, output, status_path, status })
    }

    /// A spawn failed: its cgroup and network helper go.
    fn undo(&self, cgroup: Option<InstanceCgroup>, net_helper: Option<ProcRef>) {
        if let Some(cgroup) = cgroup {
            self.tokio.spawn(cgroup.remove());
        }
        if let Some(helper) = net_helper {
            helper.kill_and_wait();
        }
    }
}

const NO_PROCESS: ProcRef = ProcRef { pid: 0, start_time: 0 };

/// What a record says of `spec` before its spawn (no processes, cgroups or environment yet).
fn record_of(spec: &WorkloadSpec, ids: Option<GuestIds>) -> ProcessRecord {
    ProcessRecord {
        instance_id: spec.instance_id.clone(),
        boot_id: record::boot_id(),
        watcher: NO_PROCESS,
        workload: NO_PROCESS,
        namespaced: false,
        net_helper: None,
        ports: host_ports(spec),
        ids: ids.map(|ids| (ids.uid, ids.gid)),
        cgroups: Vec::new(),
        data_dir: spec.data_dir.clone(),
        metadata_socket: spec.metadata_socket.clone(),
        env: Vec::new(),
    }
}

impl Inner {
    /// The guest's namespaces, with its data dir and socket dir reachable at their paths,
    /// and its network (`None`: the host's), published ports and all.
    fn sandbox_for(
        &self,
        spec: &WorkloadSpec,
        instance_dir: &Path,
        gid: u32,
    ) -> Result<(Option<Sandbox>, Option<GuestNet>), RuntimeError> {
        let net = self.options.network.create(instance_dir, gid, &host_ports(spec));
        let mut net = net.map_err(|e| match e {
            NetError::Publish { port, reason } => RuntimeError::PortBusy { port, reason },
            other => prepare(instance_dir)(std::io::Error::other(other)),
        })?;
        let resolv_conf = instance_dir.join(crate::runtime::network::RESOLV_CONF);
        let joined = net.as_mut().and_then(|net| net.join(&resolv_conf));
        let socket_dir = spec.metadata_socket.parent().unwrap_or(&spec.metadata_socket);
        let keep = [spec.data_dir.as_path(), socket_dir];
        match Sandbox::prepare(&spec.data_dir, &keep, joined) {
            Ok(sandbox) => Ok((Some(sandbox), net)),
            Err(error) => {
                if let Some(net) = net {
                    net.helper.kill_and_wait();
                }
                Err(prepare(&spec.data_dir)(error))
            }
        }
    }
}

/// The host ports a process guest listens on (the same numbers inside its network).
fn host_ports(spec: &WorkloadSpec) -> Vec<u16> {
    spec.ports.iter().map(|p| p.host).collect()
}

fn prepare(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let path = path.to_owned();
    move |source| RuntimeError::Prepare { path, source }
}

/// A workload without a record still runs; only a restarted agent could not adopt it.
fn save_record(record: &ProcessRecord, dir: &Path) {
    if let Err(error) = record.save(dir) {
        tracing::warn!(instance_id = %record.instance_id, %error,
            "cannot record the workload; a restarted agent will not adopt it");
    }
}

/// Opens `path` for appending (or truncated), 0600 also when it existed with another mode.
fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(!truncate)
        .write(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}
