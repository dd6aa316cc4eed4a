//! `ComputeProvider` implementations: [`LocalCompute`], sessions as process trees under a PTY
//! on this machine (feature `local-compute`, the embedded default).

mod local;
mod procfs;

pub use local::LocalCompute;
