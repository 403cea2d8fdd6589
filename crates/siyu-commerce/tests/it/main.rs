//! Integration tests of siyu-commerce: every rule without HTTP.
