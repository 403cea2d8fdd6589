//! Integration tests of siyu-growth: every rule without HTTP.

mod community;
mod content;
mod fission;
mod partners;
