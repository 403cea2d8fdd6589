//! Segments: a small readable language for "who", its JSON tree, the
//! evaluator, and live membership kept exact as events and time arrive.
//!
//! ```text
//! purchases(last 90d) >= 2 and net_spend >= 500.00
//!   and first_channel = "douyin" and not opted_out
//! ```

pub mod ast;
pub mod eval;
pub mod live;
pub mod parse;

pub use ast::{CmpOp, Expr, Literal, Prop, TooDeep, Window, MAX_DEPTH};
pub use eval::{explain, Explanation};
pub use parse::{parse, ParseError};
