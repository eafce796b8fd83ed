//! The scheduler: picks a backend pool for each new volume from the stats the
//! backends report, with filters and weighers, and says why when none fits.

pub mod filters;
pub mod pools;
pub mod select;
pub mod service;
pub mod weighers;
