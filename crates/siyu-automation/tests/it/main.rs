mod guard;
mod journey;
mod keyword;
mod llm;
mod nesting;
mod report;
mod schedule;
mod template;
