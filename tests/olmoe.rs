//! OLMoE adapter: loader errors and dtypes/shards built from the tiny_a fixture, forward
//! properties (sparse = dense, padding, truncation, GQA/clip/renormalized/tied paths against a
//! naive f64 reference), gradients through `encode`, the action head and checkpoints.
//! Parity with transformers itself is in `tests/conformance/olmoe.rs`.

#[path = "olmoe/loader.rs"]
mod loader;
#[path = "olmoe/model.rs"]
mod model;
#[path = "olmoe/policy.rs"]
mod policy;
#[path = "olmoe/support.rs"]
mod support;
