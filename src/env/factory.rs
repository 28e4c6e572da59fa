//! Building the built-in envs by name, with their settings in one serializable struct.

use serde::{Deserialize, Serialize};

use super::{
    CartPole, CartPoleConfig, Env, Lifecycle, LifecycleConfig, Recall, RecallConfig, VecEnv,
};
use crate::error::{Error, Result};

/// The names [`make_env`] accepts.
pub const ENV_NAMES: [&str; 3] = ["cartpole", "recall", "lifecycle"];

/// The settings of every built-in env; a missing section takes its defaults (e.g. in a JSON config
/// file: `{"recall": {"gap": 20}}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvConfigs {
    /// Settings of `cartpole`.
    pub cartpole: CartPoleConfig,
    /// Settings of `recall`.
    pub recall: RecallConfig,
    /// Settings of `lifecycle`.
    pub lifecycle: LifecycleConfig,
}

/// The built-in env called `name`, built from its section of `configs`.
///
/// # Errors
/// [`Error::Invalid`] naming `env` for an unknown name (the message lists the valid names), or
/// naming the field of a rejected setting.
pub fn make_env(name: &str, configs: &EnvConfigs) -> Result<Box<dyn Env>> {
    Ok(match name {
        "cartpole" => Box::new(CartPole::new(configs.cartpole.clone())?),
        "recall" => Box::new(Recall::new(configs.recall.clone())?),
        "lifecycle" => Box::new(Lifecycle::new(configs.lifecycle.clone())?),
        _ => {
            return Err(Error::invalid(
                "env",
                format!(
                    "unknown environment `{name}` (valid: {})",
                    ENV_NAMES.join(", ")
                ),
            ));
        }
    })
}

/// `num_envs` copies of the env called `name` in a [`VecEnv`] seeded with `seed`.
///
/// # Errors
/// As [`make_env`]; [`Error::Invalid`] naming `num_envs` when it is 0.
pub fn make_vec_env(
    name: &str,
    configs: &EnvConfigs,
    num_envs: usize,
    seed: u64,
) -> Result<VecEnv> {
    if num_envs == 0 {
        return Err(Error::invalid("num_envs", "must be at least 1"));
    }
    let envs = (0..num_envs)
        .map(|_| make_env(name, configs))
        .collect::<Result<Vec<_>>>()?;
    VecEnv::new(envs, seed)
}
