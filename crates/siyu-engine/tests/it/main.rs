//! Engine integration tests: the live engine against the brute-force
//! oracle over random event sequences and random clock advances.

mod fission;
mod live_vs_oracle;
mod log_offsets;
mod nesting;
mod rfm_layers;
mod scan_passes;
mod segments;
mod snapshot;
