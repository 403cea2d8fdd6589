//! siyu's automation core: what operators automate (journeys/SOPs, keyword
//! auto-replies) and the rules every send obeys (guardrails), as pure code.
//!
//! Invariant: like the engine, this crate does no I/O and never reads the
//! clock. The server's executor feeds it events, segment changes and the
//! current time, persists the state it returns and hands the resulting
//! actions to the connectors (`siyu-connectors`). That keeps every decision
//! reproducible and testable without a server.
//!
//! May depend on: `siyu-domain`, `siyu-engine` (segment conditions), `jiff`
//! (bundled tz database), `regex`, `aho-corasick`. Never on the store, the
//! server, the connectors, or an async runtime.

pub mod guard;
pub mod history;
pub mod intent;
pub mod journey;
pub mod keyword;
pub mod llm;
pub mod machine;
pub mod quick_reply;
pub mod report;
pub mod schedule;
pub mod sensitive;
pub mod template;
