//! siyu's commerce core: where purchases come from and what earned them —
//! marketplace orders mapped into events and matched to known persons
//! (`orders`), message → purchase attribution (`attribution`), and the
//! ad-spend table ROI is measured against (`spend`).
//!
//! Invariant: like `siyu-engine`, this crate does no I/O of its own and
//! never reads the clock. Files and bodies arrive as bytes or text; state
//! is read from the engine (`&Engine`) and the storage seam
//! (`&mut dyn siyu_store::Store`); so every rule runs in a test without
//! HTTP. The server (`siyu-server`) and the `siyu import-orders` command
//! own reading files, HTTP and the writer.
//!
//! May depend on: `siyu-domain`, `siyu-engine`, `siyu-store` (the trait),
//! `sha2` and `toml` (the phone hash and the order mapping file).
//! Never on `siyu-server`, `siyu-connectors`, axum or tokio.

pub mod attribution;
pub mod orders;
pub mod spend;
