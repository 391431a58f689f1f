//! The typed answer of one API request: each [`super::ApiRequest`] variant carries a
//! [`Reply<T>`] for exactly the type it answers, so a wrong answer does not compile.

use super::failure::Failure;
use std::fmt;
use tokio::sync::oneshot;

/// What the caller awaits: the answer, or why there is none.
pub type Answer<T> = oneshot::Receiver<Result<T, Failure>>;

/// The sending half of a request's answer.
pub struct Reply<T>(oneshot::Sender<Result<T, Failure>>);

/// An answer held back until the store has committed what its request changed: given the
/// commit's outcome, it sends the answer (or the store failure).
pub type Deferred = Box<dyn FnOnce(Result<(), Failure>)>;

impl<T: 'static> Reply<T> {
    pub fn channel() -> (Self, Answer<T>) {
        let (sender, receiver) = oneshot::channel();
        (Self(sender), receiver)
    }

    /// Answers now (reads). A caller that gave up is no error.
    pub fn send(self, result: Result<T, Failure>) {
        let _ = self.0.send(result);
    }

    /// Answers once the commit is durable (writes): a change is never reported before it
    /// is stored, and a failed commit wins over the answer.
    pub fn after_commit(self, result: Result<T, Failure>) -> Deferred {
        Box::new(move |committed| self.send(committed.and(result)))
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}
