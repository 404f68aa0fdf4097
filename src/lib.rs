//! rds-table-restore: bring back one table of an RDS MySQL/MariaDB database as it was at a
//! chosen second, by restoring the instance to that time and merging the table into production.
//!
//! The folders show the architecture: `cli` (the command line and the terminal), `engine` (the
//! core: plan, state machine, state file, ports), `cloud` (the AWS adapters) and `data` (the
//! MySQL adapter, the row codec, the copy and the verification). The engine reaches the outside
//! only through the ports in `ports` and `progress`.

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

pub mod cli;
pub mod cloud;
pub mod data;
pub mod engine;

// The modules by their short names, as the rest of the crate and its tests use them.
pub use cli::{config, manpage, ui, wizard};
pub use cloud::aws;
pub use data::{binlog, copy, mysql, rowcodec, verify};
pub use engine::{error, machine, plan, ports, progress, report, restored, state};

#[cfg(test)]
pub mod testing;
