//! Typed identifiers. Each is a short prefixed random string (`i-3f9a…`), so ids from
//! different kinds can never be confused in logs or in the API.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($name:ident, $prefix:literal) => {
        #[derive(
            Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh random id with this kind's prefix.
            pub fn random() -> Self {
                Self(format!("{}-{}", $prefix, random_suffix()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

id_type!(HostId, "h");
id_type!(InstanceId, "i");
id_type!(AccountId, "a");
id_type!(DeploymentId, "d");

fn random_suffix() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_carry_their_prefix_and_differ() {
        let a = InstanceId::random();
        let b = InstanceId::random();
        assert!(a.as_str().starts_with("i-"));
        assert_eq!(a.as_str().len(), 2 + 16);
        assert_ne!(a, b);
        assert!(HostId::random().as_str().starts_with("h-"));
    }
}
