//! `[policy]`: what the operator lets guests do on this coordinator (docs/contracts.md#guests).
//! Today one switch: `process_workloads = false` refuses requests without an `image`, for operators
//! who run strangers only in containers.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Whether requests without an image (process guests) are accepted (default true).
    pub process_workloads: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub process_workloads: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self { process_workloads: true }
    }
}

impl RawPolicy {
    pub fn validate(&self) -> Policy {
        Policy { process_workloads: self.process_workloads.unwrap_or(true) }
    }
}

impl Policy {
    /// Whether a request whose image field (`field`, e.g. `template.image`) is `image` may
    /// run here; the refusal names the field and the setting.
    pub fn admits(&self, field: &str, image: Option<&str>) -> Result<(), String> {
        if image.is_some() || self.process_workloads {
            return Ok(());
        }
        Err(format!(
            "{field} is required: this coordinator runs guests only in containers \
             ([policy] process_workloads = false); name an OCI image, e.g. \"{field}\": \"python:3.12\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_workloads_are_allowed_unless_switched_off() {
        assert_eq!(RawPolicy::default().validate(), Policy { process_workloads: true });
        let open = Policy::default();
        assert_eq!(open.admits("image", None), Ok(()));
        let strict = RawPolicy { process_workloads: Some(false) }.validate();
        assert_eq!(strict.admits("image", Some("busybox")), Ok(()));
        let refusal = strict.admits("template.image", None).unwrap_err();
        assert!(refusal.starts_with("template.image is required"), "{refusal}");
        assert!(refusal.contains("process_workloads = false"), "{refusal}");
    }

    #[test]
    fn the_sample_config_documents_the_default() {
        let sample = include_str!("../../../config/coordinator.toml");
        let settings = crate::config::RawConfig::from_toml(sample).unwrap().validate().unwrap();
        assert_eq!(settings.policy, Policy::default());
        let strict = crate::config::RawConfig::from_toml("[policy]\nprocess_workloads = false");
        assert!(!strict.unwrap().validate().unwrap().policy.process_workloads);
        assert!(crate::config::RawConfig::from_toml("[policy]\nprocesses = false").is_err());
    }
}
