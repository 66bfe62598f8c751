//! The synthetic ERP (see generate/mod.rs).
