//! The data side: the MySQL/MariaDB adapter of the session port, the exact row codec, the
//! chunked copy, the verification, and the reading of production's binlog.

pub mod binlog;
pub mod copy;
pub mod mysql;
pub mod rowcodec;
pub mod verify;
