//! (being moved here from siyu-server: issue 13)
