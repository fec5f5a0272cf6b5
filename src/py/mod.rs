//! The Python surface of the core: classes and functions of `tenant_migrate._core`, each
//! converting between Python and a plain-Rust core module. Registered in `lib.rs`.

pub(crate) mod database;
pub(crate) mod hooks;
pub(crate) mod plan;
pub(crate) mod pool;
pub(crate) mod records;
pub(crate) mod rules;
pub(crate) mod run;
pub(crate) mod status;
