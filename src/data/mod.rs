//! The data side: the MySQL/MariaDB adapter of the session port, the exact row codec, the
//! chunked copy and the verification.

pub mod copy;
pub mod mysql;
pub mod rowcodec;
pub mod verify;
