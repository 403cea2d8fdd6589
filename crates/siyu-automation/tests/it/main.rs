mod guard;
mod journey;
mod keyword;
mod schedule;
mod template;
