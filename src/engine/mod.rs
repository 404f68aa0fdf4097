//! The core: the plan, the state machine and its state file, the errors, and the ports and
//! progress traits through which it reaches AWS, the databases and the terminal. Nothing here
//! touches a terminal, the network or a database directly.

pub mod error;
pub mod machine;
pub mod plan;
pub mod ports;
pub mod progress;
pub mod report;
pub mod restored;
pub mod state;
