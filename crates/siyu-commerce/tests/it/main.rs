//! Integration tests of siyu-commerce: every rule without HTTP.
mod attribution;
mod orders;
