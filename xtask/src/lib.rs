//! `cargo xtask codegen`: lint `spec/openapi.yaml`, generate `crates/api-gen`
//! with progenitor, and check that the committed output is current.
//!
//! The pieces are a library so that tests (here and in the contract-test
//! crate) can run the same lint and JSON Schema conversion as the generator.

pub mod cli;
pub mod codegen;
pub mod facade;
pub mod gates;
pub mod json_schema;
pub mod lint;
pub mod spec;
pub mod yaml;
