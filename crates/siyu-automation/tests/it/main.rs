mod guard;
mod journey;
mod keyword;
mod nesting;
mod schedule;
mod template;
