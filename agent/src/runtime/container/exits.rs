//! Container ends, followed through one engine events stream per agent (issue 26): a
//! long-held `wait` per container costs the engine CPU while the container idles (Podman
//! before 4.5 polls each one in a loop, its issue 18150: four waits kept 0.54 of a core
//! busy here), while one events stream costs it nothing between events.
//!
//! Whoever waits for a container's end [`Exits::watch`]es its name and checks the engine
//! (an inspect) each time the watch wakes: at a `die` of that name, and at every
//! (re)connect of the stream, when every watch wakes once so that an end the stream did not
//! carry (the engine was away) is found by that inspect. A reconnect also asks the engine
//! to replay events from shortly before the previous stream broke, so nothing in the gap is
//! lost where the engine keeps them. Extra wakes cost one inspect; none is ever missed.

use bollard::Docker;
use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// Pause before reconnecting a stream that broke, and its longest backoff.
const RECONNECT: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// How far before the break (or the first connect) the engine replays events.
const REPLAY_SLACK_SECS: u64 = 2;

/// Where container events come from (the engine; tests give a fake).
pub(super) trait EventSource: Send + Sync + 'static {
    /// The container events since unix time `since`, then as they happen, until the stream
    /// breaks (an error) or the engine ends it.
    fn events(&self, since: u64) -> BoxStream<'static, Result<EventMessage, String>>;
}

impl EventSource for Docker {
    fn events(&self, since: u64) -> BoxStream<'static, Result<EventMessage, String>> {
        let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
        let options =
            EventsOptions { since: Some(since.to_string()), until: None, filters: Some(filters) };
        Docker::events(self, Some(options)).map(|event| event.map_err(|e| e.to_string())).boxed()
    }
}

/// The containers whose end someone waits for, and the task that follows the engine.
#[derive(Default)]
pub(super) struct Exits {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
    follower: Mutex<Option<AbortHandle>>,
}

/// A registered interest in one container's end; dropping it forgets the interest.
pub(super) struct ExitWatch {
    exits: Arc<Exits>,
    name: String,
    notify: Arc<Notify>,
}

impl Exits {
    /// Starts following the engine's container events on `tokio`, until `self` is dropped.
    pub fn follow(self: &Arc<Self>, source: impl EventSource, tokio: &tokio::runtime::Handle) {
        let task = tokio.spawn(follow(Arc::downgrade(self), source));
        *lock(&self.follower) = Some(task.abort_handle());
    }

    /// Wakes at the end of container `name` (and at reconnects): check it then.
    pub fn watch(self: &Arc<Self>, name: &str) -> ExitWatch {
        let notify = Arc::new(Notify::new());
        lock(&self.waiting).insert(name.to_owned(), notify.clone());
        ExitWatch { exits: self.clone(), name: name.to_owned(), notify }
    }

    pub(super) fn wake(&self, name: &str) {
        if let Some(notify) = lock(&self.waiting).get(name) {
            notify.notify_one();
        }
    }

    fn wake_all(&self) {
        lock(&self.waiting).values().for_each(|notify| notify.notify_one());
    }
}

impl Drop for Exits {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.follower).take() {
            task.abort();
        }
    }
}

impl ExitWatch {
    /// Returns at the next wake (a wake that came since the last one returns at once).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        let mut waiting = lock(&self.exits.waiting);
        // Only our own registration: a later watch of the same name replaced it.
        if waiting.get(&self.name).is_some_and(|n| Arc::ptr_eq(n, &self.notify)) {
            waiting.remove(&self.name);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is one insert, remove or take: never half done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The name of the container an event says ended (or went), if it says so.
fn ended(event: &EventMessage) -> Option<&str> {
    let action = event.action.as_deref()?;
    if !matches!(action, "die" | "died" | "destroy" | "remove") {
        return None;
    }
    let attributes = event.actor.as_ref()?.attributes.as_ref()?;
    attributes.get("name").map(|name| name.trim_start_matches('/'))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One stream at a time, for as long as the runtime lives: each (re)connect replays from a
/// little before the previous stream broke and wakes every watch.
async fn follow(exits: Weak<Exits>, source: impl EventSource) {
    let mut since = unix_now().saturating_sub(REPLAY_SLACK_SECS);
    let mut backoff = RECONNECT;
    loop {
        let mut stream = source.events(since);
        match exits.upgrade() {
            Some(exits) => exits.wake_all(),
            None => return,
        }
        let error = loop {
            match stream.next().await {
                Some(Ok(event)) => {
                    backoff = RECONNECT;
                    let Some(exits) = exits.upgrade() else { return };
                    if let Some(name) = ended(&event) {
                        exits.wake(name);
                    }
                }
                Some(Err(error)) => break error,
                None => break "the engine ended the stream".to_owned(),
            }
        };
        since = unix_now().saturating_sub(REPLAY_SLACK_SECS);
        tracing::debug!(%error, "container events stream broke; reconnecting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn event(action: &str, name: &str) -> EventMessage {
        EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some("abc".to_owned()),
                attributes: Some(HashMap::from([("name".to_owned(), name.to_owned())])),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn dies_and_removals_name_their_container_other_events_none() {
        assert_eq!(ended(&event("die", "gpuspot-i-1")), Some("gpuspot-i-1"));
        assert_eq!(ended(&event("remove", "/gpuspot-i-1")), Some("gpuspot-i-1"));
        assert_eq!(ended(&event("start", "gpuspot-i-1")), None);
        assert_eq!(ended(&EventMessage { action: Some("die".into()), ..Default::default() }), None);
    }

    #[tokio::test]
    async fn a_watch_wakes_for_its_own_container_and_is_forgotten_when_dropped() {
        let exits = Arc::new(Exits::default());
        let watch = exits.watch("gpuspot-i-1");
        exits.wake("gpuspot-i-2");
        let quiet = tokio::time::timeout(Duration::from_millis(50), watch.woken()).await;
        assert!(quiet.is_err(), "another container's end does not wake it");
        // A wake before the wait is kept: an end between a check and the wait is not lost.
        exits.wake("gpuspot-i-1");
        tokio::time::timeout(Duration::from_secs(1), watch.woken()).await.expect("woken");
        exits.wake_all();
        tokio::time::timeout(Duration::from_secs(1), watch.woken()).await.expect("reconnect");
        drop(watch);
        assert!(lock(&exits.waiting).is_empty());
    }

    type Events = tokio::sync::mpsc::UnboundedSender<Result<EventMessage, String>>;

    /// An engine whose every events stream the test feeds: each connect hands the test
    /// its `since` and the stream's sender.
    struct FakeEngine(tokio::sync::mpsc::UnboundedSender<(u64, Events)>);

    impl EventSource for FakeEngine {
        fn events(&self, since: u64) -> BoxStream<'static, Result<EventMessage, String>> {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let _ = self.0.send((since, tx));
            futures::stream::unfold(rx, |mut rx| async { Some((rx.recv().await?, rx)) }).boxed()
        }
    }

    async fn wakes(watch: &ExitWatch) -> bool {
        tokio::time::timeout(Duration::from_millis(100), watch.woken()).await.is_ok()
    }

    #[tokio::test]
    async fn ends_on_the_stream_wake_their_watch_and_a_reconnect_replays_and_wakes_all() {
        let (connects_tx, mut connects) = tokio::sync::mpsc::unbounded_channel();
        let exits = Arc::new(Exits::default());
        let (one, two) = (exits.watch("gpuspot-i-1"), exits.watch("gpuspot-i-2"));
        exits.follow(FakeEngine(connects_tx), &tokio::runtime::Handle::current());
        let (since, stream) = connects.recv().await.expect("a first connect");
        assert!(since <= unix_now() && since + REPLAY_SLACK_SECS + 1 >= unix_now());
        assert!(wakes(&one).await && wakes(&two).await, "a connect wakes every watch");

        stream.send(Ok(event("start", "gpuspot-i-1"))).unwrap();
        stream.send(Ok(event("die", "gpuspot-i-2"))).unwrap();
        assert!(wakes(&two).await, "its container died");
        assert!(!wakes(&one).await, "a start or another's end does not wake it");
        stream.send(Ok(event("die", "gpuspot-i-1"))).unwrap();
        assert!(wakes(&one).await);

        // The stream breaks: the follower connects again, replaying from before the break.
        stream.send(Err("engine restarted".into())).unwrap();
        let (replay_since, again) =
            tokio::time::timeout(Duration::from_secs(5), connects.recv()).await.unwrap().unwrap();
        assert!(replay_since >= since && replay_since < unix_now(), "{replay_since}");
        assert!(wakes(&one).await && wakes(&two).await, "a reconnect wakes every watch");

        // The follower ends with the runtime's Exits.
        drop((one, two, exits));
        tokio::time::timeout(Duration::from_secs(1), again.closed()).await.expect("stream dropped");
    }
}
