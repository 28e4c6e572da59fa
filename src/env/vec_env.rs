//! A batch of environments stepped together, auto-resetting, with flat outputs the network reads
//! directly (as Stable-Baselines3's `DummyVecEnv`, but keeping terminations and truncations apart
//! and the true final observation of every ended episode for truncation bootstrapping).

use rand::Rng;

use super::{ConditionalMask, Env, EnvSpec, Observation, random_action, validate_action};
use crate::action_space::ActionSpace;
use crate::error::{Error, Result};

/// The observations and masks of every env, flattened env-major.
#[derive(Debug, Clone, PartialEq)]
pub struct VecBatch {
    /// Continuous features.
    ///
    /// # Shapes
    /// `[num_envs * observation_size]`, row-major.
    pub features: Vec<f32>,
    /// Categorical inputs (−1 = absent).
    ///
    /// # Shapes
    /// `[num_envs * num_categorical]`, row-major.
    pub categorical: Vec<i64>,
    /// One mask per head, `true` = allowed.
    ///
    /// # Shapes
    /// `masks[h]`: `[num_envs * size_h]`, row-major.
    pub masks: Vec<Vec<bool>>,
    /// Op-dependent masks (see [`ConditionalMask`]), one entry per head: empty when no env
    /// conditions that head, else `[num_envs * num_ops * size_h]` row-major (env, op, action), all
    /// `true` for envs that do not condition it. Fold them in with
    /// [`masks_given_ops`](Self::masks_given_ops).
    pub conditional_masks: Vec<Vec<bool>>,
    /// Whether this observation is the first of an episode (the recurrent state must be reset).
    ///
    /// # Shapes
    /// `[num_envs]`
    pub episode_starts: Vec<bool>,
}

impl VecBatch {
    /// The number of envs.
    pub fn num_envs(&self) -> usize {
        self.episode_starts.len()
    }

    /// The per-head masks once the op of every env is chosen: each non-op head's mask restricted by
    /// the space's op-conditioned rules and by the env's conditional masks; the op head's mask is
    /// returned unchanged. Sample the other heads from these rows, and store them as the step's
    /// masks so that re-evaluating the stored actions sees the same rows (applying the static
    /// rules again is harmless: they are idempotent).
    ///
    /// # Shapes
    /// - `ops`: `[num_envs]`
    /// - output: `masks[h]`: `[num_envs * size_h]`
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `ops` is not one op per env or a mask block does not fit the
    /// space and the number of envs; [`Error::ActionOutOfRange`] or
    /// [`Error::MaskedAction`] for an op its mask forbids; [`Error::EmptyMask`] naming the head and
    /// env when a conditioned row allows nothing.
    pub fn masks_given_ops(&self, space: &ActionSpace, ops: &[usize]) -> Result<Vec<Vec<bool>>> {
        let num_envs = self.num_envs();
        if ops.len() != num_envs {
            return Err(Error::ShapeMismatch {
                name: "ops".into(),
                expected: vec![num_envs],
                found: vec![ops.len()],
            });
        }
        let op_index = space.op_index();
        let num_ops = space.num_ops();
        self.check_shapes(space)?;
        for (row, &op) in ops.iter().enumerate() {
            if op >= num_ops {
                return Err(Error::ActionOutOfRange {
                    head: space.heads()[op_index].name.clone(),
                    row,
                    action: op,
                    size: num_ops,
                });
            }
            if !self.masks[op_index][row * num_ops + op] {
                return Err(Error::MaskedAction {
                    head: space.heads()[op_index].name.clone(),
                    row,
                    action: op,
                });
            }
        }
        let mut out = self.masks.clone();
        for (head, spec) in space.heads().iter().enumerate() {
            if head == op_index {
                continue;
            }
            let size = spec.size;
            let conditional = &self.conditional_masks[head];
            for (row, &op) in ops.iter().enumerate() {
                let mask_row = &mut out[head][row * size..(row + 1) * size];
                space.restrict_mask_row(head, op, mask_row);
                if !conditional.is_empty() {
                    let start = (row * num_ops + op) * size;
                    for (m, &c) in mask_row.iter_mut().zip(&conditional[start..start + size]) {
                        *m &= c;
                    }
                }
                if !mask_row.iter().any(|&m| m) {
                    return Err(Error::EmptyMask {
                        head: spec.name.clone(),
                        row,
                    });
                }
            }
        }
        Ok(out)
    }
}

impl VecBatch {
    /// Checks that the mask blocks fit `space` and the number of envs.
    fn check_shapes(&self, space: &ActionSpace) -> Result<()> {
        let num_envs = self.num_envs();
        let num_heads = space.num_heads();
        for (what, found) in [
            ("masks (one per head)", self.masks.len()),
            (
                "conditional_masks (one per head)",
                self.conditional_masks.len(),
            ),
        ] {
            if found != num_heads {
                return Err(Error::WrongLength {
                    what: what.into(),
                    expected: num_heads,
                    found,
                });
            }
        }
        for (head, spec) in space.heads().iter().enumerate() {
            let expected = num_envs * spec.size;
            if self.masks[head].len() != expected {
                return Err(Error::ShapeMismatch {
                    name: format!("masks of head `{}`", spec.name),
                    expected: vec![num_envs, spec.size],
                    found: vec![self.masks[head].len()],
                });
            }
            let conditional = self.conditional_masks[head].len();
            if conditional != 0 && conditional != expected * space.num_ops() {
                return Err(Error::ShapeMismatch {
                    name: format!("conditional masks of head `{}`", spec.name),
                    expected: vec![num_envs, space.num_ops(), spec.size],
                    found: vec![conditional],
                });
            }
        }
        Ok(())
    }
}

/// One finished episode.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRecord {
    /// The env it ran in.
    pub env: usize,
    /// The undiscounted sum of its rewards.
    pub episode_return: f32,
    /// Its number of steps.
    pub length: usize,
    /// Whether it succeeded, for tasks with a notion of success (see [`Env::episode_success`]).
    pub success: Option<bool>,
}

/// The result of [`VecEnv::step`].
#[derive(Debug, Clone, PartialEq)]
pub struct VecStep {
    /// The observations to act on next: the reset observation (with `episode_starts` set) where an
    /// episode ended.
    pub next: VecBatch,
    /// The rewards of the step.
    ///
    /// # Shapes
    /// `[num_envs]`
    pub rewards: Vec<f32>,
    /// Whether each env reached a terminal state (never bootstrapped).
    pub terminated: Vec<bool>,
    /// Whether each env was cut by a time limit (bootstrap from `final_observations`).
    pub truncated: Vec<bool>,
    /// The true final observation of each env whose episode ended this step (`None` elsewhere): the
    /// observation to bootstrap a truncation from — never the reset observation in `next`.
    pub final_observations: Vec<Option<Observation>>,
    /// The masks of each true final observation (`None` where no episode ended): what a
    /// deterministic bootstrap from that observation may choose.
    pub final_masks: Vec<Option<Vec<Vec<bool>>>>,
    /// The episodes that ended this step.
    pub finished: Vec<EpisodeRecord>,
}

/// `N` environments of one kind, stepped together and reset automatically when an episode ends.
///
/// Env `i` is reseeded with `seed + i` at the first [`reset`](Self::reset); later resets (automatic
/// or explicit) continue each env's own random stream, so a run is a pure function of `seed`.
pub struct VecEnv {
    envs: Vec<Box<dyn Env>>,
    spec: EnvSpec,
    seed: u64,
    seeded: bool,
    running: bool,
    /// The current masks of each env (`[env][head][action]`), to validate the next actions.
    masks: Vec<Vec<Vec<bool>>>,
    returns: Vec<f64>,
    lengths: Vec<usize>,
}

impl std::fmt::Debug for VecEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VecEnv")
            .field("env", &self.spec.name)
            .field("num_envs", &self.envs.len())
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl VecEnv {
    /// Wraps `envs`, which must all have the same spec; call [`reset`](Self::reset) first.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `envs` when the list is empty or two envs' specs differ.
    pub fn new(envs: Vec<Box<dyn Env>>, seed: u64) -> Result<Self> {
        let first = envs
            .first()
            .ok_or_else(|| Error::invalid("envs", "a VecEnv needs at least one env"))?;
        let spec = first.spec().clone();
        if let Some(i) = envs.iter().position(|e| e.spec() != &spec) {
            return Err(Error::invalid(
                "envs",
                format!("env {i} has another spec than env 0 (`{}`)", spec.name),
            ));
        }
        let num_envs = envs.len();
        Ok(Self {
            envs,
            spec,
            seed,
            seeded: false,
            running: false,
            masks: vec![Vec::new(); num_envs],
            returns: vec![0.0; num_envs],
            lengths: vec![0; num_envs],
        })
    }

    /// The shared spec.
    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// The number of envs.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// Env `index`, e.g. to read its conditional masks or task-specific state.
    pub fn env(&self, index: usize) -> Option<&dyn Env> {
        self.envs.get(index).map(|e| e.as_ref())
    }

    /// The current per-head masks of env `index` (empty before the first reset).
    pub fn env_masks(&self, index: usize) -> Option<&[Vec<bool>]> {
        self.masks.get(index).map(Vec::as_slice)
    }

    /// Starts an episode in every env: seeds `seed + i` at the first call, each env's own random
    /// stream afterwards. Every `episode_starts` entry is `true`.
    ///
    /// # Errors
    /// The mask and shape checks of [`step`](Self::step), naming the env, when an env breaks its
    /// spec.
    pub fn reset(&mut self) -> Result<VecBatch> {
        let mut batch = self.empty_batch();
        for i in 0..self.envs.len() {
            let seed = (!self.seeded).then(|| self.seed.wrapping_add(i as u64));
            let reset = self.envs[i].reset(seed);
            self.returns[i] = 0.0;
            self.lengths[i] = 0;
            self.masks[i] = reset.masks;
            self.append(&mut batch, i, &reset.observation, true)?;
        }
        self.seeded = true;
        self.running = true;
        Ok(batch)
    }

    /// Applies one action per env (`actions[env][head]`), resetting the envs whose episode ended.
    ///
    /// Every action is validated against its env's masks before any env moves, so a bad action
    /// leaves the whole batch untouched.
    ///
    /// # Errors
    /// [`Error::Invalid`] before the first reset; [`Error::WrongLength`] for a wrong number of
    /// envs or heads; [`Error::ActionOutOfRange`] or [`Error::MaskedAction`] naming the head, with
    /// the env index as `row`; [`Error::ShapeMismatch`], [`Error::EmptyMask`] or
    /// [`Error::Invalid`] naming the env when an env breaks its spec.
    pub fn step(&mut self, actions: &[Vec<usize>]) -> Result<VecStep> {
        if !self.running {
            return Err(Error::invalid("vec_env.step", "call reset first"));
        }
        let num_envs = self.envs.len();
        if actions.len() != num_envs {
            return Err(Error::WrongLength {
                what: "actions (one per env)".into(),
                expected: num_envs,
                found: actions.len(),
            });
        }
        for (i, (env, action)) in self.envs.iter().zip(actions).enumerate() {
            validate_action(
                &self.spec.action_space,
                &self.masks[i],
                env.conditional_masks(),
                action,
                i,
            )?;
        }
        let mut next = self.empty_batch();
        let mut rewards = Vec::with_capacity(num_envs);
        let mut terminated = Vec::with_capacity(num_envs);
        let mut truncated = Vec::with_capacity(num_envs);
        let mut final_observations = Vec::with_capacity(num_envs);
        let mut final_masks = Vec::with_capacity(num_envs);
        let mut finished = Vec::new();
        for (i, action) in actions.iter().enumerate() {
            let step = self.envs[i].step(action)?;
            if !step.reward.is_finite() {
                return Err(Error::NonFinite {
                    name: format!("reward of env {i}"),
                    row: i,
                });
            }
            self.returns[i] += f64::from(step.reward);
            self.lengths[i] += 1;
            rewards.push(step.reward);
            terminated.push(step.terminated);
            truncated.push(step.truncated);
            if step.terminated || step.truncated {
                finished.push(EpisodeRecord {
                    env: i,
                    episode_return: self.returns[i] as f32,
                    length: self.lengths[i],
                    success: self.envs[i].episode_success(),
                });
                let reset = self.envs[i].reset(None);
                self.returns[i] = 0.0;
                self.lengths[i] = 0;
                self.masks[i] = reset.masks;
                self.append(&mut next, i, &reset.observation, true)?;
                final_observations.push(Some(step.observation));
                final_masks.push(Some(step.masks));
            } else {
                self.masks[i] = step.masks;
                self.append(&mut next, i, &step.observation, false)?;
                final_observations.push(None);
                final_masks.push(None);
            }
        }
        Ok(VecStep {
            next,
            rewards,
            terminated,
            truncated,
            final_observations,
            final_masks,
            finished,
        })
    }

    /// A uniformly random allowed action for every env (see [`random_action`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] before the first reset; [`Error::EmptyMask`] when a row allows nothing.
    pub fn random_actions<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Vec<Vec<usize>>> {
        if !self.running {
            return Err(Error::invalid("vec_env.random_actions", "call reset first"));
        }
        self.envs
            .iter()
            .zip(&self.masks)
            .map(|(env, masks)| {
                random_action(&self.spec.action_space, masks, env.conditional_masks(), rng)
            })
            .collect()
    }

    fn empty_batch(&self) -> VecBatch {
        let n = self.envs.len();
        let space = &self.spec.action_space;
        VecBatch {
            features: Vec::with_capacity(n * self.spec.observation_size),
            categorical: Vec::with_capacity(n * self.spec.categorical_vocab.len()),
            masks: space
                .head_sizes()
                .iter()
                .map(|&size| Vec::with_capacity(n * size))
                .collect(),
            conditional_masks: vec![Vec::new(); space.num_heads()],
            episode_starts: Vec::with_capacity(n),
        }
    }

    /// Appends env `i`'s observation and current masks to `batch`, checking them against the spec.
    fn append(
        &self,
        batch: &mut VecBatch,
        i: usize,
        observation: &Observation,
        episode_start: bool,
    ) -> Result<()> {
        let spec = &self.spec;
        let space = &spec.action_space;
        if observation.features.len() != spec.observation_size {
            return Err(Error::ShapeMismatch {
                name: format!("observation features of env {i}"),
                expected: vec![spec.observation_size],
                found: vec![observation.features.len()],
            });
        }
        if let Some(k) = observation.features.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                name: format!("observation feature {k} of env {i}"),
                row: i,
            });
        }
        if observation.categorical.len() != spec.categorical_vocab.len() {
            return Err(Error::ShapeMismatch {
                name: format!("categorical inputs of env {i}"),
                expected: vec![spec.categorical_vocab.len()],
                found: vec![observation.categorical.len()],
            });
        }
        for (k, (&value, &vocab)) in observation
            .categorical
            .iter()
            .zip(&spec.categorical_vocab)
            .enumerate()
        {
            if value < -1 || value >= vocab as i64 {
                return Err(Error::invalid(
                    format!("categorical input {k} of env {i}"),
                    format!("{value} is outside -1..{vocab}"),
                ));
            }
        }
        let masks = &self.masks[i];
        let conditional = self.envs[i].conditional_masks();
        super::validate_masks(space, masks, conditional, i)?;
        batch.features.extend_from_slice(&observation.features);
        batch
            .categorical
            .extend_from_slice(&observation.categorical);
        for (flat, row) in batch.masks.iter_mut().zip(masks) {
            flat.extend_from_slice(row);
        }
        append_conditional(batch, space, conditional, i, self.envs.len());
        batch.episode_starts.push(episode_start);
        Ok(())
    }
}

/// Writes env `i`'s conditional masks into the batch, allocating a head's all-`true` block the
/// first time any env conditions that head.
fn append_conditional(
    batch: &mut VecBatch,
    space: &ActionSpace,
    conditional: &[ConditionalMask],
    i: usize,
    num_envs: usize,
) {
    let num_ops = space.num_ops();
    for c in conditional {
        let size = space.heads()[c.head].size;
        let block = &mut batch.conditional_masks[c.head];
        if block.is_empty() {
            *block = vec![true; num_envs * num_ops * size];
        }
        for (op, row) in c.by_op.iter().enumerate() {
            let start = (i * num_ops + op) * size;
            block[start..start + size].copy_from_slice(row);
        }
    }
}
