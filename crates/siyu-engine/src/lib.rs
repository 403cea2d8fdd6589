//! siyu engine (in progress)
