//! siyu's engine: the identity graph, every person's computed properties,
//! live segments and the commerce analytics, in memory.
//!
//! Invariant: this crate does no I/O and never reads the clock. Events and
//! time are passed in ([`Engine::apply`], [`Engine::advance_to`]), so the
//! live engine can be checked against a brute-force recompute
//! ([`oracle`]) and every answer is reproducible.
//!
//! May depend on: `siyu-domain`, `foldhash`. Never on the store,
//! the server or anything that does I/O or reads the clock.

pub mod analytics;
pub mod chunked;
pub mod conversation;
pub mod customers;
pub mod engine;
pub mod fission;
pub mod identity;
pub mod lists;
pub mod log_index;
pub mod oracle;
pub mod person;
pub mod property;
pub mod rfm;
pub mod scan;
pub mod segment;
pub mod snapshot;

pub use engine::{Applied, Engine, Merge, PersonId, RawEvent, Referral};
pub use person::Person;
pub use segment::live::{SegmentChange, SegmentError};
