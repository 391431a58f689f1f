//! The core's enums and nested records as the API's: each match is exhaustive, so a state
//! or reason added to the core fails to compile here until the contract names it.

use crate::core::Host;
use crate::core::autoscale::{Autoscaling, ScheduledMinimum};
use crate::core::billing::EntryKind;
use crate::core::deployment::{DeploymentSpec, DeploymentState, Mode, Template};
use crate::core::model::{
    Billing, EndReason, GpuRequest, InstanceState, OnUnavailable, Range, SnapshotOptions,
};
use crate::core::notices::MailState;
use crate::core::serving::Readiness;
use crate::core::settings::PoolPricing;
use gpuspot_api as api;

/// A core value as the API shows it.
pub trait ToApi {
    type Api;
    fn to_api(&self) -> Self::Api;
}

/// Maps unit-only enums variant by variant.
macro_rules! same_names {
    ($core:ty => $api:ty { $($variant:ident),+ $(,)? }) => {
        impl ToApi for $core {
            type Api = $api;
            fn to_api(&self) -> $api {
                match self {
                    $(<$core>::$variant => <$api>::$variant),+
                }
            }
        }
    };
}

same_names!(InstanceState => api::InstanceState {
    Queued, Scheduled, Running, TerminationScheduled, Stopping, Terminated, Failed,
});
same_names!(EndReason => api::EndReason {
    User, Exited, ReclaimedPrice, ReclaimedCapacity, Overdue, HostLost, HostMaintenance, Failed,
    Drill, GpuFault,
});
same_names!(OnUnavailable => api::OnUnavailable { Queue, Fail });
same_names!(Mode => api::Mode { Replicaset, Job, Container });
same_names!(DeploymentState => api::DeploymentState {
    Waiting, Running, Completed, Failed, Deleted,
});
same_names!(PoolPricing => api::Pricing { Market, FixedAtStart });
same_names!(EntryKind => api::EntryKind { Payment, Charge });
same_names!(MailState => api::MailState { None, Pending, Sent, Failed });

/// The connection and the operator's maintenance as the one state users see; the core
/// names it (drained is a rule of the registry's), and every name it gives is one of the
/// API's (tested below).
pub fn host_state(h: &Host) -> api::HostState {
    let shown = h.shown_state();
    api::HostState::parse(shown).unwrap_or_else(|| unreachable!("host state {shown:?}"))
}

impl ToApi for Billing {
    type Api = api::Billing;
    fn to_api(&self) -> api::Billing {
        match self {
            Billing::Regular => api::Billing::Regular,
            Billing::Spot { max_price } => api::Billing::Spot { max_price: *max_price },
        }
    }
}

pub fn gpu(request: &GpuRequest) -> api::GpuAsk {
    api::GpuAsk { models: request.models.clone(), count: request.count }
}

impl ToApi for Range {
    type Api = api::Range;
    fn to_api(&self) -> api::Range {
        api::Range { min: self.min, max: self.max }
    }
}

impl ToApi for SnapshotOptions {
    type Api = api::SnapshotOptions;
    fn to_api(&self) -> api::SnapshotOptions {
        api::SnapshotOptions { enabled: self.enabled, restore_from: self.restore_from.clone() }
    }
}

impl ToApi for Readiness {
    type Api = api::Readiness;
    fn to_api(&self) -> api::Readiness {
        api::Readiness {
            http_path: self.http_path.clone(),
            interval: Some(humantime::format_duration(self.interval).to_string()),
        }
    }
}

impl ToApi for DeploymentSpec {
    type Api = api::Spec;
    fn to_api(&self) -> api::Spec {
        api::Spec {
            gpu: gpu(&self.gpu),
            cpu_cores: self.cpu_cores.to_api(),
            memory_gib: self.memory_gib.to_api(),
            billing: self.billing.to_api(),
        }
    }
}

impl ToApi for Template {
    type Api = api::Template;
    fn to_api(&self) -> api::Template {
        api::Template {
            command: self.command.clone(),
            env: self.env.clone(),
            snapshot: self.snapshot.to_api(),
            image: self.image.clone(),
            data_disk_gib: self.data_disk_gib,
            ports: self.ports.clone(),
            readiness: self.readiness.as_ref().map(ToApi::to_api),
        }
    }
}

impl ToApi for Autoscaling {
    type Api = api::Autoscaling;
    fn to_api(&self) -> api::Autoscaling {
        api::Autoscaling {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            target_rps_per_replica: self.target_rps_per_replica,
            target_gpu_utilization: self.target_gpu_utilization,
            scale_in_delay: humantime::format_duration(self.scale_in_delay).to_string(),
        }
    }
}

impl ToApi for ScheduledMinimum {
    type Api = api::ScheduledMinimum;
    fn to_api(&self) -> api::ScheduledMinimum {
        api::ScheduledMinimum { cron: self.cron.clone(), min_replicas: self.min_replicas }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::{HostState, Maintenance};
    use gpuspot_common::{HostId, HostInventory};

    #[test]
    fn every_host_state_the_core_shows_is_the_apis() {
        let inventory =
            HostInventory { hostname: "a".into(), gpus: vec![], cpu_cores: 1, memory_gib: 1 };
        let at = chrono::DateTime::UNIX_EPOCH;
        let mut host = Host::new(HostId::from("h-1"), &inventory, "test", at);
        for state in [HostState::Connected, HostState::Disconnected, HostState::Lost] {
            for maintenance in [Maintenance::None, Maintenance::Cordoned, Maintenance::Draining] {
                host.connect(at);
                match state {
                    HostState::Connected => {}
                    HostState::Disconnected => host.disconnect().unwrap(),
                    HostState::Lost => host.lose().unwrap(),
                }
                host.set_maintenance(maintenance);
                assert_eq!(host.state(), state);
                assert_eq!(host_state(&host).as_str(), host.shown_state());
            }
        }
    }
}
