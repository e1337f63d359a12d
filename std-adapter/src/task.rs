//! The agent's background tasks (the agent itself, its handlers, its render targets),
//! watched so that one that panics ends the process with a failure instead of leaving it
//! running without it, and so that a supervisor's `restart: on-failure` fires.

use std::future::Future;

use tokio::task::{JoinError, JoinHandle};

/// A background task of the agent that panicked or was cancelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFailed {
    /// Which task: `agent`, `handlers` or `render`.
    pub task: &'static str,
    /// The panic's message, or `cancelled`.
    pub reason: String,
}

impl std::fmt::Display for TaskFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} task failed: {}", self.task, self.reason)
    }
}

impl std::error::Error for TaskFailed {}

impl TaskFailed {
    fn from_join(task: &'static str, e: &JoinError) -> Self {
        let reason = if e.is_cancelled() {
            "cancelled".to_owned()
        } else {
            "panicked".to_owned()
        };
        TaskFailed { task, reason }
    }

    pub(crate) fn from_panic(task: &'static str, e: JoinError) -> Self {
        match e.try_into_panic() {
            Ok(payload) => {
                let reason = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panicked".to_owned());
                TaskFailed {
                    task,
                    reason: format!("panicked: {reason}"),
                }
            }
            Err(e) => TaskFailed::from_join(task, &e),
        }
    }
}

/// One spawned task, watched: [`failed`](Self::failed) resolves if it fails while the
/// agent runs, [`join`](Self::join) says how it ended.
#[derive(Debug)]
pub(crate) struct Supervised {
    task: &'static str,
    handle: Option<JoinHandle<()>>,
    ended: Option<Result<(), TaskFailed>>,
}

impl Supervised {
    /// Spawns `future` on the current runtime as the task named `task`.
    pub(crate) fn spawn(
        task: &'static str,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Supervised {
            task,
            handle: Some(tokio::spawn(future)),
            ended: None,
        }
    }

    /// Resolves when the task has failed; never when it ended normally. Cancel-safe.
    pub(crate) async fn failed(&mut self) -> TaskFailed {
        if let Some(handle) = self.handle.as_mut() {
            let result = handle.await;
            self.handle = None;
            self.ended = Some(result.map_err(|e| TaskFailed::from_panic(self.task, e)));
        }
        match &self.ended {
            Some(Err(e)) => e.clone(),
            _ => std::future::pending().await,
        }
    }

    /// Waits for the task to end.
    pub(crate) async fn join(mut self) -> Result<(), TaskFailed> {
        match self.handle.take() {
            Some(handle) => handle
                .await
                .map_err(|e| TaskFailed::from_panic(self.task, e)),
            None => self.ended.unwrap_or(Ok(())),
        }
    }

    /// Stops the task at its next await point.
    pub(crate) fn abort(&self) {
        if let Some(h) = &self.handle {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_panic_is_reported_with_its_message() {
        let mut t = Supervised::spawn("handlers", async { panic!("boom") });
        let failure = tokio::time::timeout(Duration::from_secs(5), t.failed())
            .await
            .expect("the failure was not reported");
        assert_eq!(failure.task, "handlers");
        assert_eq!(failure.reason, "panicked: boom");
        assert_eq!(t.join().await, Err(failure));
    }

    #[tokio::test]
    async fn a_normal_end_is_no_failure() {
        let mut t = Supervised::spawn("render", async {});
        let waited = tokio::time::timeout(Duration::from_millis(200), t.failed()).await;
        assert!(waited.is_err(), "a normal end reported as a failure");
        assert_eq!(t.join().await, Ok(()));
    }

    #[tokio::test]
    async fn an_aborted_task_was_cancelled() {
        let t = Supervised::spawn("agent", std::future::pending());
        t.abort();
        let e = t.join().await.unwrap_err();
        assert_eq!(e.reason, "cancelled");
    }
}
