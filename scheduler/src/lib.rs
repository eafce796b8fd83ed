//! scoria-scheduler

pub mod extra_specs;
pub mod filters;
pub mod pools;
pub mod select;
pub mod weighers;
