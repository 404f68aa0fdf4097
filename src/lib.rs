//! rds-table-restore: bring back one table of an RDS MySQL/MariaDB database as it was at a
//! chosen second, by restoring the instance to that time and merging the table into production.
//!
//! The core (`plan`, `machine`, `copy`, `verify`, `state`) reaches the outside only through
//! the ports in `ports` and `progress`; `aws`, `mysql` and `ui` are the real adapters.

/// Ends the process on the spot, as a crash would, when the failpoint `name` is set to
/// `return` (`FAILPOINTS=restore-after-call=return`). Only in builds with the `failpoints`
/// feature; elsewhere it is nothing.
#[macro_export]
macro_rules! crash_point {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        {
            if fail::eval($name, |_| ()).is_some() {
                eprintln!("failpoint {}: crashing", $name);
                std::process::exit($crate::CRASH_EXIT_CODE);
            }
        }
    };
}

/// The exit code of a process ended by a crash point.
pub const CRASH_EXIT_CODE: i32 = 86;

pub mod aws;
pub mod cli;
pub mod config;
pub mod copy;
pub mod error;
pub mod machine;
pub mod manpage;
pub mod mysql;
pub mod plan;
pub mod ports;
pub mod progress;
pub mod report;
pub mod rowcodec;
pub mod state;
pub mod ui;
pub mod verify;
pub mod wizard;

#[cfg(test)]
pub mod testing;
