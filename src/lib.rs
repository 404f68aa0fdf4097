//! rds-table-restore: bring back one table of an RDS MySQL/MariaDB database as it was at a
//! chosen second, by restoring the instance to that time and merging the table into production.
//!
//! The core (`plan`, `machine`, `copy`, `verify`, `state`) reaches the outside only through
//! the ports in `ports` and `progress`; `aws`, `mysql` and `ui` are the real adapters.

pub mod aws;
pub mod cli;
pub mod copy;
pub mod error;
pub mod machine;
pub mod mysql;
pub mod plan;
pub mod ports;
pub mod progress;
pub mod report;
pub mod rowcodec;
pub mod state;
pub mod ui;
pub mod verify;

#[cfg(test)]
pub mod testing;
