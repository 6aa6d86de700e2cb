//! lubdub: keeps TCP connections honest at high connection counts.
#![warn(missing_docs)]

pub mod time;
pub mod wheel;
