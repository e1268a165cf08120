//! Integration tests against the real `ferroftp` binary, in one test
//! binary so the suite links once. Each module covers one area; `common`
//! starts servers on port 0 and drives raw control connections.

mod common;
mod smoke;
