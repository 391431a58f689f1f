
pub mod discovery;
pub mod metadata;
pub mod runtime;
