//! The cluster actor's one timer: armed for the core's `poll_timeout` after every message,
//! it calls `handle_timeout` and commits what that changed. Nothing in the core polls.

use super::cluster::ClusterActor;
use actix::{AsyncContext, Context, Handler, Message, SpawnHandle};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// At least this long between wake-ups, so a due time that did not clear cannot spin.
const MIN_DELAY: Duration = Duration::from_millis(1);

#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// The wake-up armed now: when, and the handle that cancels it.
#[derive(Default)]
pub struct Alarm {
    armed: Option<(DateTime<Utc>, SpawnHandle)>,
}

impl ClusterActor {
    /// Arms the alarm for the core's next due time, unless it is armed for that already.
    pub(super) fn arm_alarm(&mut self, ctx: &mut Context<Self>) {
        let Some(at) = self.core.poll_timeout() else {
            return;
        };
        if let Some((armed_at, _)) = &self.alarm.armed
            && *armed_at == at
        {
            return;
        }
        if let Some((_, handle)) = self.alarm.armed.take() {
            ctx.cancel_future(handle);
        }
        let delay = (at - self.now).to_std().unwrap_or_default().max(MIN_DELAY);
        let handle = ctx.notify_later(Wake, delay);
        self.alarm.armed = Some((at, handle));
    }
}

impl Handler<Wake> for ClusterActor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.alarm.armed = None;
        self.handle_timeout();
        drop(self.flush());
        self.arm_alarm(ctx);
    }
}
