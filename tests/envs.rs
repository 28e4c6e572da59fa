//! The built-in environments and the vectorized wrapper: dynamics against independently written
//! formulas, termination vs truncation, auto-reset with the true final observation, masks that
//! are never empty, reference policies that never take a masked action, determinism from a seed,
//! and named errors for bad actions and configs.

#[path = "envs/cartpole.rs"]
mod cartpole;
#[path = "envs/factory.rs"]
mod factory;
#[path = "envs/lifecycle.rs"]
mod lifecycle;
#[path = "envs/recall.rs"]
mod recall;
#[path = "envs/vec_env.rs"]
mod vec_env;
