//! A request's id beyond the request's own task: the work it hands to a
//! blocking thread, the writer thread and the automation executor is
//! logged under the same id.
//!
//! The `request_id` layer (`lib.rs`) runs each request [`scope`]d: its
//! future is in the request's span and [`current`] answers its id. Work
//! that leaves the task takes the id along — `request::blocking` and the
//! writer's and executor's commands capture [`current`] when they are
//! made — and the thread doing it runs [`in_scope`] of that id, which
//! enters a span of the same name and field (`request{request_id=…}`), so
//! a log line on any thread names the request that caused it. A group
//! commit serves several requests: its lines name them all
//! ([`in_scope_of_all`], `requests{request_ids=…}`).

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use tracing::Instrument;

/// One request's id (the client's `x-request-id`, or a fresh one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

tokio::task_local! {
    static TASK: RequestId;
}

thread_local! {
    static THREAD: RefCell<Option<RequestId>> = const { RefCell::new(None) };
}

impl RequestId {
    pub fn new(id: &str) -> RequestId {
        RequestId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The span every line logged for this request is written in. At
    /// error level, so it exists whenever any line is logged.
    pub fn span(&self) -> tracing::Span {
        tracing::error_span!("request", request_id = %self.0)
    }
}

/// The id of the request whose work runs on this task or thread, if any.
pub fn current() -> Option<RequestId> {
    TASK.try_with(Clone::clone)
        .ok()
        .or_else(|| THREAD.with(|t| t.borrow().clone()))
}

/// Runs `f` as request `id`'s: in its span, with [`current`] answering `id`.
pub async fn scope<F: Future>(id: RequestId, f: F) -> F::Output {
    let span = id.span();
    TASK.scope(id, f.instrument(span)).await
}

/// Puts the thread's previous request back, even when `f` panics.
struct Restore(Option<RequestId>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        THREAD.with(|t| *t.borrow_mut() = previous);
    }
}

/// Runs `f` on this thread as the work of request `id` (`None`: of no
/// request): [`current`] answers `id` and its log lines are in the
/// request's span.
pub fn in_scope<T>(id: Option<&RequestId>, f: impl FnOnce() -> T) -> T {
    let _restore = Restore(THREAD.with(|t| t.replace(id.cloned())));
    match id {
        Some(id) => id.span().in_scope(f),
        None => f(),
    }
}

/// Most ids a group commit's span lists; the rest are counted.
const MAX_IDS_LISTED: usize = 32;

/// Runs `f` as the work of every request in `ids` (a group commit): one
/// request is [`in_scope`] of it; several are named in one span
/// `requests{request_ids="a,b,…"}` (at most 32, then `+N more`).
pub fn in_scope_of_all<T>(ids: &[RequestId], f: impl FnOnce() -> T) -> T {
    let mut distinct: Vec<&RequestId> = Vec::new();
    for id in ids {
        if !distinct.contains(&id) {
            distinct.push(id);
        }
    }
    match distinct.as_slice() {
        [] => in_scope(None, f),
        [one] => in_scope(Some(one), f),
        many => {
            let mut listed: Vec<&str> = many
                .iter()
                .take(MAX_IDS_LISTED)
                .map(|id| id.as_str())
                .collect();
            let more = many.len().saturating_sub(MAX_IDS_LISTED);
            let more = format!("+{more} more");
            if many.len() > MAX_IDS_LISTED {
                listed.push(&more);
            }
            let _restore = Restore(THREAD.with(|t| t.replace(None)));
            tracing::error_span!("requests", request_ids = %listed.join(",")).in_scope(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_runs_as_the_request_it_was_given_and_then_as_before() {
        assert_eq!(current(), None);
        let a = RequestId::new("a");
        let b = RequestId::new("b");
        in_scope(Some(&a), || {
            assert_eq!(current().as_ref(), Some(&a));
            in_scope(Some(&b), || assert_eq!(current().as_ref(), Some(&b)));
            assert_eq!(current().as_ref(), Some(&a));
            in_scope(None, || assert_eq!(current(), None));
            in_scope_of_all(&[b.clone(), b.clone()], || {
                assert_eq!(current().as_ref(), Some(&b))
            });
            in_scope_of_all(&[a.clone(), b.clone()], || assert_eq!(current(), None));
        });
        assert_eq!(current(), None);
        let caught = std::panic::catch_unwind(|| in_scope(Some(&a), || panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(current(), None);
    }

    #[tokio::test]
    async fn a_scoped_task_answers_its_id() {
        let id = RequestId::new("task-1");
        let seen = scope(id.clone(), async { current() }).await;
        assert_eq!(seen, Some(id));
        assert_eq!(current(), None);
    }
}
