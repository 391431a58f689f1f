//! An instance's lifecycle (docs/contracts.md#lifecycle) as one enum whose variants carry what is
//! true in that state: queued (why it waits), scheduled (its placement), running (and its run's
//! start and hold), noticed (and the deadline), stopping (and why), ended (and how). The transition
//! methods are the only code that changes it; each names the states it may start from and returns
//! the [`Effect`]s the cluster must carry out.

use super::effects::{Effect, WrongState};
use crate::events::{EventData, EventKind, payloads};
use crate::model::{EndReason, InstanceState};
use chrono::{DateTime, Utc};
use gpuspot_common::{HostId, Money};
use serde::{Deserialize, Serialize};

/// Where an instance was placed and at what price it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub host_id: HostId,
    pub gpu_uuids: Vec<String>,
    pub gpu_model: String,
    pub cpu_cores: u32,
    pub memory_gib: u64,
    /// Per GPU-hour, now: list for regular, the market price capped by the bid for spot.
    pub price: Money,
    /// Host ports it was given (docs/contracts.md#serving): its `PORT`, or its container ports' in
    /// order.
    pub host_ports: Vec<u16>,
}

/// The workload's run, from the agent's first `running` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub started_at: DateTime<Utc>,
    /// Spot only: not reclaimed for price or capacity before this (seed 000's hold).
    pub hold_until: Option<DateTime<Utc>>,
}

/// A scheduled termination: the guest sees `at` on its socket from the moment it is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    pub at: DateTime<Utc>,
    pub reason: EndReason,
}

/// Units a regular request reclaimed and is owed (docs/contracts.md#market): while it waits nothing
/// else is placed on them. Their marks in the registry follow from it (see [`crate::promises`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    pub host_id: HostId,
    pub gpu_uuids: Vec<String>,
}

/// How an instance ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    /// `Terminated`, or `Failed` for a request that never ran.
    pub state: InstanceState,
    pub reason: EndReason,
    /// The reason as users read it (`exited: code 3`, `image_pull_failed: …`).
    pub text: String,
    pub exit_code: Option<i32>,
    pub at: DateTime<Utc>,
    pub placement: Option<Placement>,
    pub run: Option<Run>,
    /// The deadline it had been given, if any (still shown after the end).
    pub notice_at: Option<DateTime<Utc>>,
}

impl Ending {
    /// An end at `at`; what it held and had is filled in by [`Lifecycle::end`].
    pub fn new(state: InstanceState, reason: EndReason, text: String, at: DateTime<Utc>) -> Self {
        Self {
            state,
            reason,
            text,
            exit_code: None,
            at,
            placement: None,
            run: None,
            notice_at: None,
        }
    }

    pub fn with_exit_code(mut self, code: Option<i32>) -> Self {
        self.exit_code = code;
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Queued {
        waiting: String,
        /// The units it reclaimed, while it waits for them.
        promise: Option<Promise>,
    },
    Scheduled {
        placement: Placement,
    },
    Running {
        placement: Placement,
        run: Run,
    },
    /// A notice may come before the workload ran (an overdue account): `run` is None then.
    Noticed {
        placement: Placement,
        run: Option<Run>,
        notice: Notice,
    },
    Stopping {
        placement: Placement,
        run: Option<Run>,
        reason: EndReason,
        notice_at: Option<DateTime<Utc>>,
    },
    Ended(Box<Ending>),
}

/// What a queued instance waits for when nothing was said yet.
pub const FIRST_WAIT: &str = "waiting for placement";

impl Lifecycle {
    pub fn state(&self) -> InstanceState {
        match self {
            Lifecycle::Queued { .. } => InstanceState::Queued,
            Lifecycle::Scheduled { .. } => InstanceState::Scheduled,
            Lifecycle::Running { .. } => InstanceState::Running,
            Lifecycle::Noticed { .. } => InstanceState::TerminationScheduled,
            Lifecycle::Stopping { .. } => InstanceState::Stopping,
            Lifecycle::Ended(ending) => ending.state,
        }
    }

    pub fn placement(&self) -> Option<&Placement> {
        match self {
            Lifecycle::Queued { .. } => None,
            Lifecycle::Scheduled { placement }
            | Lifecycle::Running { placement, .. }
            | Lifecycle::Noticed { placement, .. }
            | Lifecycle::Stopping { placement, .. } => Some(placement),
            Lifecycle::Ended(ending) => ending.placement.as_ref(),
        }
    }

    pub fn run(&self) -> Option<&Run> {
        match self {
            Lifecycle::Queued { .. } | Lifecycle::Scheduled { .. } => None,
            Lifecycle::Running { run, .. } => Some(run),
            Lifecycle::Noticed { run, .. } | Lifecycle::Stopping { run, .. } => run.as_ref(),
            Lifecycle::Ended(ending) => ending.run.as_ref(),
        }
    }

    pub fn notice(&self) -> Option<&Notice> {
        match self {
            Lifecycle::Noticed { notice, .. } => Some(notice),
            _ => None,
        }
    }

    /// The deadline it has or had: shown from the notice on, also after the end.
    pub fn notice_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Lifecycle::Noticed { notice, .. } => Some(notice.at),
            Lifecycle::Stopping { notice_at, .. } => *notice_at,
            Lifecycle::Ended(ending) => ending.notice_at,
            _ => None,
        }
    }

    /// Why it is being stopped, is noticed, or ended.
    pub fn end_reason(&self) -> Option<EndReason> {
        match self {
            Lifecycle::Noticed { notice, .. } => Some(notice.reason),
            Lifecycle::Stopping { reason, .. } => Some(*reason),
            Lifecycle::Ended(ending) => Some(ending.reason),
            _ => None,
        }
    }

    fn check(&self, transition: &'static str, allowed: &[InstanceState]) -> Result<(), WrongState> {
        let from = self.state();
        if allowed.contains(&from) { Ok(()) } else { Err(WrongState { transition, from }) }
    }

    /// Queued → a fresh waiting reason; true when it changed (worth storing).
    pub fn wait(&mut self, reason: &str) -> Result<bool, WrongState> {
        self.check("wait", &[InstanceState::Queued])?;
        let Lifecycle::Queued { waiting, .. } = self else { unreachable!() };
        let changed = waiting != reason;
        if changed {
            reason.clone_into(waiting);
        }
        Ok(changed)
    }

    /// The promise it holds while queued.
    pub fn promise(&self) -> Option<&Promise> {
        match self {
            Lifecycle::Queued { promise, .. } => promise.as_ref(),
            _ => None,
        }
    }

    /// Queued: records the units it is owed (or none); the promise it held before.
    pub fn set_promise(&mut self, new: Option<Promise>) -> Result<Option<Promise>, WrongState> {
        self.check("set_promise", &[InstanceState::Queued])?;
        let Lifecycle::Queued { promise, .. } = self else { unreachable!() };
        Ok(std::mem::replace(promise, new))
    }

    /// Queued → scheduled on `placement`: its agent is told to start it; a promise it held
    /// ends (the promised units, if it was not placed on them, are free for others).
    pub fn place(&mut self, placement: Placement) -> Result<Vec<Effect>, WrongState> {
        self.check("place", &[InstanceState::Queued])?;
        let data = EventData::Placed(payloads::Placed {
            gpu_uuids: placement.gpu_uuids.clone(),
            price: placement.price,
        });
        let host = placement.host_id.clone();
        let kept = self.forget_promise();
        *self = Lifecycle::Scheduled { placement };
        let placed = [Effect::Event(EventKind::InstancePlaced, data), Effect::Start { host }];
        Ok(kept.into_iter().chain(placed).collect())
    }

    /// The effect that ends the promise a queued lifecycle holds, if it holds one.
    fn forget_promise(&self) -> Option<Effect> {
        self.promise().map(|p| Effect::ForgetPromise { host: p.host_id.clone() })
    }

    /// Scheduled → queued again, its units released: its agent refused to start it (a
    /// host port held by another program, docs/contracts.md#serving) and it waits with `waiting`.
    pub fn unplace(&mut self, waiting: String) -> Result<Vec<Effect>, WrongState> {
        self.check("unplace", &[InstanceState::Scheduled])?;
        let Lifecycle::Scheduled { placement } = self else { unreachable!() };
        let host = placement.host_id.clone();
        let data = EventData::Requeued(payloads::Requeued { requeued: waiting.clone() });
        *self = Lifecycle::Queued { waiting, promise: None };
        Ok(vec![Effect::Event(EventKind::InstanceChanged, data), Effect::Release { host }])
    }

    /// Scheduled: other host ports for the same placement (the agent refused the first).
    pub fn set_host_ports(&mut self, ports: Vec<u16>) -> Result<(), WrongState> {
        self.check("set_host_ports", &[InstanceState::Scheduled])?;
        let Lifecycle::Scheduled { placement } = self else { unreachable!() };
        placement.host_ports = ports;
        Ok(())
    }

    /// The agent reports it running: the run (and a spot hold) starts now. A workload
    /// noticed before it ran keeps its notice; it still starts its run, so it is charged.
    pub fn start(&mut self, run: Run) -> Result<Vec<Effect>, WrongState> {
        match self {
            Lifecycle::Scheduled { placement } => {
                *self = Lifecycle::Running { placement: placement.clone(), run };
            }
            Lifecycle::Noticed { run: slot @ None, .. } => *slot = Some(run),
            _ => return Err(WrongState { transition: "start", from: self.state() }),
        }
        let mut effects = vec![Effect::Event(EventKind::InstanceRunning, EventData::default())];
        if run.hold_until.is_some() {
            effects.push(Effect::Metadata);
        }
        effects.push(Effect::Reconcile);
        Ok(effects)
    }

    /// Scheduled or running → noticed: it ends at `notice.at`, and the guest hears so now.
    pub fn give_notice(&mut self, notice: Notice) -> Result<Vec<Effect>, WrongState> {
        self.check("give_notice", &[InstanceState::Scheduled, InstanceState::Running])?;
        let (placement, run) = match self {
            Lifecycle::Scheduled { placement } => (placement.clone(), None),
            Lifecycle::Running { placement, run } => (placement.clone(), Some(*run)),
            _ => unreachable!(),
        };
        *self = Lifecycle::Noticed { placement, run, notice };
        let data = EventData::Noticed(payloads::Noticed {
            reason: because(notice.reason),
            termination_time: notice.at,
        });
        Ok(vec![
            Effect::Event(EventKind::TerminationScheduled, data),
            Effect::Metadata,
            Effect::Reconcile,
        ])
    }

    /// Noticed → noticed again for `notice.reason` (a GPU that failed under it), ending at
    /// the earlier of the two deadlines; the guest hears the new reason.
    pub fn renotice(&mut self, notice: Notice) -> Result<Vec<Effect>, WrongState> {
        self.check("renotice", &[InstanceState::TerminationScheduled])?;
        let Lifecycle::Noticed { notice: current, .. } = self else { unreachable!() };
        *current = Notice { at: current.at.min(notice.at), reason: notice.reason };
        let data = EventData::Noticed(payloads::Noticed {
            reason: because(current.reason),
            termination_time: current.at,
        });
        Ok(vec![
            Effect::Event(EventKind::TerminationScheduled, data),
            Effect::Metadata,
            Effect::Reconcile,
        ])
    }

    /// An overdue notice a payment settled: back to scheduled or running as it was.
    pub fn cancel_notice(&mut self) -> Result<Vec<Effect>, WrongState> {
        self.check("cancel_notice", &[InstanceState::TerminationScheduled])?;
        let Lifecycle::Noticed { placement, run, notice } = self else { unreachable!() };
        if notice.reason != EndReason::Overdue {
            return Err(WrongState { transition: "cancel_notice", from: self.state() });
        }
        *self = match run {
            Some(run) => Lifecycle::Running { placement: placement.clone(), run: *run },
            None => Lifecycle::Scheduled { placement: placement.clone() },
        };
        let data = EventData::Because(payloads::Because { reason: "payment".into() });
        Ok(vec![Effect::Event(EventKind::TerminationCancelled, data), Effect::Metadata])
    }

    /// Placed → stopping: the agent is told to stop it; it ends when the agent says so.
    pub fn stop(&mut self, reason: EndReason) -> Result<Vec<Effect>, WrongState> {
        use InstanceState::*;
        self.check("stop", &[Scheduled, Running, TerminationScheduled])?;
        let notice_at = self.notice_at();
        let (placement, run) = (self.placement().cloned(), self.run().copied());
        let placement = placement.expect("a placed instance has a placement");
        let host = placement.host_id.clone();
        *self = Lifecycle::Stopping { placement, run, reason, notice_at };
        let data = EventData::Because(payloads::Because { reason: because(reason) });
        Ok(vec![Effect::Event(EventKind::InstanceStopping, data), Effect::Stop { host, reason }])
    }

    /// Any state but ended → ended: its units are released and its owner hears of it.
    pub fn end(&mut self, mut ending: Ending) -> Result<Vec<Effect>, WrongState> {
        use InstanceState::*;
        self.check("end", &[Queued, Scheduled, Running, TerminationScheduled, Stopping])?;
        ending.placement = self.placement().cloned();
        ending.run = self.run().copied();
        ending.notice_at = self.notice_at();
        let data = EventData::Ended(payloads::Ended {
            detail: ending.text.clone(),
            exit_code: ending.exit_code,
            reason: because(ending.reason),
            state: ending.state.as_str().into(),
        });
        let kind = if ending.state == Failed {
            EventKind::InstanceFailed
        } else {
            EventKind::InstanceTerminated
        };
        let release =
            ending.placement.as_ref().map(|p| Effect::Release { host: p.host_id.clone() });
        let release = release.or_else(|| self.forget_promise());
        *self = Lifecycle::Ended(Box::new(ending));
        Ok(release.into_iter().chain([Effect::Event(kind, data), Effect::Ended]).collect())
    }

    /// A new price for a placed instance; the guest hears it.
    pub fn reprice(&mut self, price: Money) -> Result<Vec<Effect>, WrongState> {
        use InstanceState::*;
        self.check("reprice", &[Scheduled, Running, TerminationScheduled, Stopping])?;
        match self {
            Lifecycle::Scheduled { placement }
            | Lifecycle::Running { placement, .. }
            | Lifecycle::Noticed { placement, .. }
            | Lifecycle::Stopping { placement, .. } => placement.price = price,
            _ => unreachable!(),
        }
        Ok(vec![Effect::Metadata])
    }
}

/// An end reason as events name it.
fn because(reason: EndReason) -> String {
    reason.as_str().into()
}
