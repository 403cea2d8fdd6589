mod guard;
mod journey;
mod keyword;
mod nesting;
mod report;
mod schedule;
mod template;
