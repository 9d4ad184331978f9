//! Rust client for the UiPath Communications Mining API.

pub use cm_api_gen as generated;
