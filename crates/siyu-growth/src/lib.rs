//! siyu's growth core: what turns customers into more customers and keeps
//! them together — fission campaigns and their reward ledger
//! (`fission`), communities (`community`: operators, customer groups,
//! live codes and how a newcomer is routed, hand-over, the SOP calendar),
//! the content library (`content`), Moments SOPs (`moments`: planned
//! customer-Moments posts and who each may reach) and the partner program
//! (`partners`: attribution, commission rules and the commission ledger).
//!
//! Invariant: like `siyu-engine` and `siyu-automation`, this crate does no
//! I/O of its own and never reads the clock. Time is passed in; state is
//! read from the engine (`&Engine`) and read and written through the
//! storage seam (`&mut dyn siyu_store::Store`), so every rule runs in a
//! test without HTTP. The server (`siyu-server`) owns the HTTP routes, the
//! writer and the timers that call into it.
//!
//! May depend on: `siyu-domain`, `siyu-engine`, `siyu-store` (the trait),
//! `siyu-automation` (templates, schedules, guardrail kinds), `siyu-poster`
//! (a campaign's poster template is checked when it is saved). Never on
//! `siyu-server`, `siyu-connectors`, axum or tokio.

pub mod community;
pub mod content;
pub mod fission;
pub mod live;
pub mod moments;
pub mod partners;
