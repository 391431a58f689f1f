//! How a request's guest runs (docs/contracts.md#guests): in a container from its `image`, or as a
//! process without one, with a data disk of `data_disk_gib`. This module owns the rules
//! for those two fields (what a valid image name and disk size are), which runtime a
//! request needs, and whether a host offers it. Pure: the API and the placement call it.

use super::model::InstanceRequest;
use super::registry::Host;
use gpuspot_common::protocol::GuestRuntime;

pub use super::model::{DEFAULT_DATA_DISK_GIB, default_data_disk_gib};

/// Seed 004 offers no larger data disks.
pub const MAX_DATA_DISK_GIB: u64 = 50;
/// The longest image reference accepted (Docker's own limit for a reference is 255).
pub const MAX_IMAGE_BYTES: usize = 255;

/// Checks an image reference as given in `field` (`image`, `template.image`): not empty,
/// at most [`MAX_IMAGE_BYTES`], no whitespace or control characters. Returns the problem
/// as a sentence that names the field.
pub fn check_image(field: &str, image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err(format!("{field} must not be empty (leave it out for a process workload)"));
    }
    if image.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "{field} must be at most {MAX_IMAGE_BYTES} bytes, not {}",
            image.len()
        ));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{field} {image:?} must not contain whitespace or control characters"));
    }
    Ok(())
}

/// Checks a data disk size as given in `field`: 1 to [`MAX_DATA_DISK_GIB`] GiB.
pub fn check_data_disk(field: &str, gib: u64) -> Result<(), String> {
    if (1..=MAX_DATA_DISK_GIB).contains(&gib) {
        Ok(())
    } else {
        Err(format!(
            "{field} must be between 1 and {MAX_DATA_DISK_GIB} (GiB), not {gib}: \
             larger data disks are not offered"
        ))
    }
}

/// The runtime a request needs: a container when it names an image.
pub fn required_runtime(request: &InstanceRequest) -> GuestRuntime {
    match request.image {
        Some(_) => GuestRuntime::Container,
        None => GuestRuntime::Process,
    }
}

/// Whether `host` can run `request`'s guest.
pub fn host_runs(host: &Host, request: &InstanceRequest) -> bool {
    host.runtimes.contains(&required_runtime(request))
}

/// How a waiting reason names the missing runtime.
pub fn runtime_phrase(runtime: GuestRuntime) -> &'static str {
    match runtime {
        GuestRuntime::Container => "runs containers",
        GuestRuntime::Process => "runs process workloads",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_checked_and_the_field_is_named() {
        for good in ["busybox", "docker.io/library/python:3.12", "gpuspot/test@sha256:ab12"] {
            assert_eq!(check_image("image", good), Ok(()), "{good}");
        }
        let empty = check_image("image", "").unwrap_err();
        assert!(empty.starts_with("image must not be empty"), "{empty}");
        let long = check_image("template.image", &"a".repeat(256)).unwrap_err();
        assert!(long.starts_with("template.image must be at most 255 bytes"), "{long}");
        assert_eq!(check_image("image", &"a".repeat(255)), Ok(()));
        for bad in ["busy box", "busybox\n", "a\tb", "x\u{7}", "x\u{a0}y"] {
            let problem = check_image("image", bad).unwrap_err();
            assert!(problem.contains("whitespace or control characters"), "{problem}");
        }
    }

    #[test]
    fn data_disks_are_1_to_50_gib() {
        assert_eq!(check_data_disk("data_disk_gib", 1), Ok(()));
        assert_eq!(check_data_disk("data_disk_gib", 50), Ok(()));
        for bad in [0, 51, u64::MAX] {
            let problem = check_data_disk("data_disk_gib", bad).unwrap_err();
            assert!(problem.starts_with("data_disk_gib must be between 1 and 50"), "{problem}");
        }
    }
}
