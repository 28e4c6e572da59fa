//! Generalized Advantage Estimation (Schulman et al., "High-Dimensional Continuous Control Using
//! Generalized Advantage Estimation", 2016) with terminations and truncations kept apart.
//!
//! A termination never bootstraps. A truncation (time limit) bootstraps from the value of the
//! *true final observation* of the episode, not from the observation the environment was reset
//! to. When both are set, termination wins. Returns are `advantages + values`, computed before any
//! advantage normalization.
//!
//! ```text
//! A = 0
//! for t = T-1 .. 0:
//!     done_t = terminated_t or truncated_t
//!     v_next = 0 if terminated_t
//!              else terminal_values_t if truncated_t
//!              else values_{t+1} (last_values at T-1)
//!     A_t    = r_t + γ·v_next − V_t + γλ·(1 − done_t)·A_{t+1}
//! returns_t = A_t + V_t
//! ```

use crate::error::{Error, Result};

/// The inputs of [`compute_gae`], time-major `[steps][envs]` flattened row-major.
#[derive(Debug, Clone, Copy)]
pub struct GaeInputs<'a> {
    /// Number of environments (the row length).
    pub num_envs: usize,
    /// `r_t`, `[steps, envs]`.
    pub rewards: &'a [f32],
    /// `V(obs_t)`, `[steps, envs]`.
    pub values: &'a [f32],
    /// Whether step `t` ended the episode by a termination, `[steps, envs]`.
    pub terminated: &'a [bool],
    /// Whether step `t` ended the episode by a truncation, `[steps, envs]`.
    pub truncated: &'a [bool],
    /// Value of the true final observation of step `t`, used where truncated and not terminated,
    /// `[steps, envs]` (other entries are ignored).
    pub terminal_values: &'a [f32],
    /// `V(obs_T)`, the value after the last step, `[envs]`.
    pub last_values: &'a [f32],
}

/// Discount `γ` and GAE `λ`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaeParams {
    /// Discount factor γ.
    pub gamma: f32,
    /// GAE λ.
    pub lambda: f32,
}

impl GaeInputs<'_> {
    /// The number of steps, after checking that every field has the same layout.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming the first field whose length does not fit;
    /// [`Error::NonFinite`] naming a field with NaN or infinity and the flat index.
    pub fn validate(&self) -> Result<usize> {
        if self.num_envs == 0 {
            return Err(Error::invalid("num_envs", "must be at least 1"));
        }
        if self.last_values.len() != self.num_envs {
            return Err(shape_error(
                "last_values",
                self.num_envs,
                1,
                self.last_values.len(),
            ));
        }
        let steps = self.rewards.len() / self.num_envs;
        let full = steps * self.num_envs;
        for (name, len) in [
            ("rewards", self.rewards.len()),
            ("values", self.values.len()),
            ("terminated", self.terminated.len()),
            ("truncated", self.truncated.len()),
            ("terminal_values", self.terminal_values.len()),
        ] {
            if len != full || len == 0 {
                return Err(shape_error(name, self.num_envs, steps.max(1), len));
            }
        }
        for (name, values) in [
            ("rewards", self.rewards),
            ("values", self.values),
            ("last_values", self.last_values),
        ] {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    name: name.into(),
                    row: i,
                });
            }
        }
        let bootstrapped = self
            .truncated
            .iter()
            .zip(self.terminated)
            .zip(self.terminal_values);
        if let Some(i) = bootstrapped
            .clone()
            .position(|((&tr, &te), v)| tr && !te && !v.is_finite())
        {
            return Err(Error::NonFinite {
                name: "terminal_values".into(),
                row: i,
            });
        }
        Ok(steps)
    }
}

fn shape_error(name: &str, envs: usize, steps: usize, found: usize) -> Error {
    Error::ShapeMismatch {
        name: name.into(),
        expected: if name == "last_values" {
            vec![envs]
        } else {
            vec![steps, envs]
        },
        found: vec![found],
    }
}

/// Computes advantages and returns into `advantages` and `returns` (`[steps, envs]` each).
///
/// # Errors
/// The errors of [`GaeInputs::validate`], and [`Error::ShapeMismatch`] when an output slice does
/// not have `steps * envs` entries.
pub fn compute_gae(
    inputs: &GaeInputs<'_>,
    params: GaeParams,
    advantages: &mut [f32],
    returns: &mut [f32],
) -> Result<()> {
    let n = inputs.num_envs;
    let steps = inputs.rewards.len() / n.max(1);
    let shapes_fit = n > 0
        && steps > 0
        && [
            inputs.values.len(),
            inputs.terminated.len(),
            inputs.truncated.len(),
            inputs.terminal_values.len(),
            advantages.len(),
            returns.len(),
        ]
        .iter()
        .all(|&len| len == steps * n)
        && inputs.rewards.len() == steps * n
        && inputs.last_values.len() == n;
    if !shapes_fit {
        inputs.validate()?;
        for (name, out) in [("advantages", advantages.len()), ("returns", returns.len())] {
            if out != steps * n {
                return Err(shape_error(name, n, steps, out));
            }
        }
    }
    let GaeParams { gamma, lambda } = params;
    let gamma_lambda = gamma * lambda;
    let mut next_advantage = vec![0.0f32; n];
    // Non-finite inputs propagate into the advantages; they are detected once at the end (a single
    // flag instead of a validation pass per field) and then named by `validate`.
    let mut finite = true;
    for t in (0..steps).rev() {
        let row = t * n..(t + 1) * n;
        let next_values = if t + 1 < steps {
            &inputs.values[(t + 1) * n..(t + 2) * n]
        } else {
            inputs.last_values
        };
        let cells = advantages[row.clone()]
            .iter_mut()
            .zip(&mut returns[row.clone()])
            .zip(&inputs.rewards[row.clone()])
            .zip(&inputs.values[row.clone()])
            .zip(&inputs.terminated[row.clone()])
            .zip(&inputs.truncated[row.clone()])
            .zip(&inputs.terminal_values[row])
            .zip(next_values)
            .zip(&mut next_advantage);
        for ((((((((adv, ret), &r), &v), &terminated), &truncated), &terminal), &v_next), next) in
            cells
        {
            let v_next = if terminated {
                0.0
            } else if truncated {
                terminal
            } else {
                v_next
            };
            let continues = if terminated || truncated { 0.0 } else { 1.0 };
            let advantage = r + gamma * v_next - v + gamma_lambda * continues * *next;
            finite &= advantage.is_finite();
            *next = advantage;
            *adv = advantage;
            *ret = advantage + v;
        }
    }
    if !finite {
        inputs.validate()?;
        return Err(Error::NonFinite {
            name: "advantages".into(),
            row: advantages.iter().position(|a| !a.is_finite()).unwrap_or(0),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case<'a> {
        rewards: &'a [f32],
        values: &'a [f32],
        terminated: &'a [bool],
        truncated: &'a [bool],
        terminal: &'a [f32],
        last: &'a [f32],
    }

    fn run(case: Case<'_>, gamma: f32, lambda: f32) -> Vec<f32> {
        let inputs = GaeInputs {
            num_envs: case.last.len(),
            rewards: case.rewards,
            values: case.values,
            terminated: case.terminated,
            truncated: case.truncated,
            terminal_values: case.terminal,
            last_values: case.last,
        };
        let mut adv = vec![0.0; case.rewards.len()];
        let mut ret = vec![0.0; case.rewards.len()];
        compute_gae(&inputs, GaeParams { gamma, lambda }, &mut adv, &mut ret).unwrap();
        for i in 0..adv.len() {
            assert_eq!(ret[i], adv[i] + case.values[i]);
        }
        adv
    }

    #[test]
    fn lambda_one_is_discounted_return_minus_value() {
        // No episode end: A_t = Σ γ^k r_{t+k} + γ^{T-t} V_T − V_t for λ = 1.
        let r = [1.0, 2.0, 3.0];
        let v = [0.5, -0.5, 0.25];
        let adv = run(
            Case {
                rewards: &r,
                values: &v,
                terminated: &[false; 3],
                truncated: &[false; 3],
                terminal: &[0.0; 3],
                last: &[2.0],
            },
            0.9,
            1.0,
        );
        let expected0 = 1.0 + 0.9 * 2.0 + 0.81 * 3.0 + 0.729 * 2.0 - 0.5;
        assert!((adv[0] - expected0).abs() < 1e-5);
    }

    #[test]
    fn lambda_zero_is_one_step_td_error() {
        let r = [1.0, 2.0];
        let v = [0.5, -0.5];
        let adv = run(
            Case {
                rewards: &r,
                values: &v,
                terminated: &[false; 2],
                truncated: &[false; 2],
                terminal: &[0.0; 2],
                last: &[3.0],
            },
            0.9,
            0.0,
        );
        assert!((adv[0] - (1.0 + 0.9 * -0.5 - 0.5)).abs() < 1e-6);
        assert!((adv[1] - (2.0 + 0.9 * 3.0 + 0.5)).abs() < 1e-6);
    }

    #[test]
    fn truncation_bootstraps_from_final_observation_and_termination_wins() {
        let r = [1.0, 1.0];
        let v = [0.0, 0.0];
        let truncated = run(
            Case {
                rewards: &r,
                values: &v,
                terminated: &[false, false],
                truncated: &[true, false],
                terminal: &[10.0, 0.0],
                last: &[5.0],
            },
            0.5,
            0.5,
        );
        assert_eq!(truncated[0], 1.0 + 0.5 * 10.0);
        let both = run(
            Case {
                rewards: &r,
                values: &v,
                terminated: &[true, false],
                truncated: &[true, false],
                terminal: &[10.0, 0.0],
                last: &[5.0],
            },
            0.5,
            0.5,
        );
        assert_eq!(both[0], 1.0);
    }

    #[test]
    fn bad_lengths_and_non_finite_rewards_name_the_field() {
        let mut adv = vec![0.0; 2];
        let mut ret = vec![0.0; 2];
        let inputs = GaeInputs {
            num_envs: 1,
            rewards: &[1.0, f32::NAN],
            values: &[0.0, 0.0],
            terminated: &[false, false],
            truncated: &[false, false],
            terminal_values: &[0.0, 0.0],
            last_values: &[0.0],
        };
        let params = GaeParams {
            gamma: 0.9,
            lambda: 0.9,
        };
        assert!(matches!(
            compute_gae(&inputs, params, &mut adv, &mut ret),
            Err(Error::NonFinite { name, row: 1 }) if name == "rewards"
        ));
        let short = GaeInputs {
            values: &[0.0],
            rewards: &[1.0, 1.0],
            ..inputs
        };
        assert!(matches!(
            compute_gae(&short, params, &mut adv, &mut ret),
            Err(Error::ShapeMismatch { name, .. }) if name == "values"
        ));
    }
}
