//! gpuspot-common: what the agent, the coordinator and the CLI agree on.
//!
//! Layout:
//! - [`ids`]: typed identifiers (hosts, instances, accounts, deployments).
//! - [`money`]: integer micro-unit money with decimal-string I/O.
//! - [`inventory`]: GPUs, host inventory and the seed-004 partition into units.
//! - [`logcap`]: workload log files capped on disk by punching out their oldest bytes.
//! - [`clock`]: the `Clock` trait (system and manual) so core logic never reads the wall clock.
//! - [`metrics`]: `/metrics` bodies in OpenMetrics or the classic text format.
//! - [`protocol`]: the agent ↔ coordinator messages, one enum per direction.
//! - [`codec`]: the only place that turns those messages into bytes (u32 length + bincode).
//! - [`dirlock`]: one process per directory (the agent's state dir, the coordinator's data dir).
//! - [`process`]: logging set-up and shutdown signals shared by the binaries.
//! - [`pki`]: the coordinator CA, join tokens, host certificates and rustls configs.
//! - [`transport`]: quinn endpoints built from the PKI configs.
//! - [`snapshot`]: packing a data dir (tar + zstd, sha256) and restoring it safely.

pub mod clock;
#[cfg(feature = "io")]
pub mod codec;
#[cfg(feature = "io")]
pub mod dirlock;
pub mod ids;
pub mod inventory;
#[cfg(feature = "io")]
pub mod logcap;
#[cfg(feature = "io")]
pub mod metrics;
pub mod money;
#[cfg(feature = "io")]
pub mod pki;
#[cfg(feature = "io")]
pub mod process;
pub mod protocol;
#[cfg(feature = "io")]
pub mod snapshot;
#[cfg(feature = "io")]
pub mod transport;

pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{AccountId, DeploymentId, HostId, InstanceId};
pub use inventory::{GpuInfo, HostInventory, Unit, partition};
pub use money::Money;
