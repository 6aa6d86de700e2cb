//! lubdub: keeps TCP connections honest at high connection counts.
#![warn(missing_docs)]

pub mod client;
pub mod duration;
pub mod keepalive;
pub mod limits;
pub mod protocol;
pub mod rng;
pub mod shutdown;
pub mod swarm;
pub mod time;
pub mod wheel;
