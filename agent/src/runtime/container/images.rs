//! Images are pulled once per host: a start looks for the image first, and starts of the
//! same image wait for one pull instead of each running its own.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One lock per image reference, held across look-up and pull.
#[derive(Default)]
pub struct Pulls {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Pulls {
    /// Makes sure the engine has `image`, pulling it if needed. The error is the engine's
    /// reason, for `image_pull_failed: …`.
    pub async fn ensure(&self, docker: &Docker, image: &str) -> Result<(), String> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.entry(image.to_owned()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        if docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        tracing::info!(image, "pulling image");
        pull(docker, image).await?;
        docker
            .inspect_image(image)
            .await
            .map(drop)
            .map_err(|e| format!("{image}: the engine reported a pull but has no such image: {e}"))
    }
}

async fn pull(docker: &Docker, image: &str) -> Result<(), String> {
    let options = CreateImageOptions {
        from_image: Some(image.to_owned()),
        // Without a tag the Docker API pulls every tag of the repository.
        tag: (!has_tag(image)).then(|| "latest".to_owned()),
        ..Default::default()
    };
    let mut progress = docker.create_image(Some(options), None, None);
    while let Some(step) = progress.next().await {
        match step {
            Ok(info) => {
                if let Some(error) = info.error_detail.and_then(|d| d.message).or(info.error) {
                    return Err(format!("{image}: {error}"));
                }
            }
            Err(error) => return Err(format!("{image}: {}", engine_message(&error))),
        }
    }
    Ok(())
}

/// Whether a reference names a tag or digest (`name:tag`, `name@sha256:…`), not counting a
/// registry's port (`host:5000/name`).
fn has_tag(image: &str) -> bool {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.contains(':') || last.contains('@')
}

/// The engine's own message where it sent one, else the client's error.
pub fn engine_message(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::has_tag;

    #[test]
    fn tags_are_told_from_registry_ports() {
        assert!(has_tag("ubuntu:24.04"));
        assert!(has_tag("localhost:5000/app:1"));
        assert!(has_tag("app@sha256:abc"));
        assert!(!has_tag("localhost:5000/app"));
        assert!(!has_tag("ubuntu"));
    }
}
