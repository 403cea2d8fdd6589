//! Integration tests of siyu-growth: every rule without HTTP.

mod content;
