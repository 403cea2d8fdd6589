//! siyu-poster's one integration-test binary.

mod props;
mod render;
mod support;
mod validate;
