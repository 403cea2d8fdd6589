//! Full-log passes: every stored event fed in log order, with its person,
//! over a copy of the engine's identity table (what a pass that reads
//! the payload needs: live-session tallies). Funnel steps and attribution
//! read five fields only and go through the event columns instead
//! ([`columns_pass_in_event_time`], `crate::columns`). Engine and store
//! access plumbing, like `request.rs`; it imports no route module.

use crate::error::ApiError;
use crate::request::read_engine;
use crate::AppState;
use siyu_engine::scan::{EventTimePass, IdentityIndex};
use siyu_engine::PersonId;

/// Events read per page by [`log_pass`]: small, because other readers
/// wait for the reader connection while a page is read (at 50,000 a
/// timeline waited up to 1.1 s in a debug build during a pass).
pub const LOG_PASS_PAGE: usize = 10_000;

/// Feeds every stored event up to the log's head at the start, in log
/// order, with its person, to `feed` (the analytics that need sequences).
///
/// Bounded and never in anyone's way: the engine's read lock is held only
/// to copy its identity table (`Engine::identity_index`), the reader
/// connection only while one page ([`LOG_PASS_PAGE`] events) is read,
/// so the writer keeps writing and other requests keep reading between
/// pages; memory is that copy, one page and the pass's per-person state.
/// Events appended after the start are not part of the answer.
pub fn log_pass(
    state: &AppState,
    mut feed: impl FnMut(PersonId, &siyu_engine::RawEvent<'_>),
) -> Result<(), ApiError> {
    let (head, persons) = start(state)?;
    read_log(state, head, &persons, &mut feed)
}

/// A pass in event time over the event columns (`crate::columns`): the
/// events the engine has applied, five fields each, read from a file at
/// memory speed instead of the log. What funnel steps and attribution use.
pub fn columns_pass_in_event_time(
    state: &AppState,
    pass: &mut impl EventTimePass,
) -> Result<(), ApiError> {
    state.0.columns.pass_in_event_time(state, pass)
}

/// The log's head and the copy of the identity table a pass reads with.
fn start(state: &AppState) -> Result<(u64, IdentityIndex), ApiError> {
    let head = state
        .0
        .reader
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .last_offset()?;
    Ok((head, read_engine(state).identity_index()))
}

fn read_log(
    state: &AppState,
    head: u64,
    persons: &IdentityIndex,
    feed: &mut dyn FnMut(PersonId, &siyu_engine::RawEvent<'_>),
) -> Result<(), ApiError> {
    let mut after = 0;
    while after < head {
        let page = state
            .0
            .reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scan(after, LOG_PASS_PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.offset;
        for stored in page.iter().take_while(|e| e.offset <= head) {
            let raw = siyu_engine::RawEvent::from_event(stored.offset, &stored.event);
            if let Some(p) = persons.person_of(raw.identity) {
                feed(p, &raw);
            }
        }
    }
    Ok(())
}
