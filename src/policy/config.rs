use burn::config::Config;

use crate::action_space::{ActionSpace, ActionSpaceConfig};
use crate::error::Result;

/// How the critic's value of a state is formed (SPEC §5). Whatever the mode, the op used for the
/// value is the op that was stored as the action.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum ValueMode {
    /// `Q(s, op)` for the chosen op (the reference behaviour).
    SelectedOp,
    /// `Σ_op π(op|s)·Q(s, op)`, exactly, over all allowed ops in one batched pass: a baseline that
    /// does not contain the action being scored, and the `E_a[Q(s′, a)]` GAE wants.
    ExpectedOp,
    /// An op-independent `V(s)` head.
    StateValue,
}

/// Categorical observation inputs embedded by one shared table.
#[derive(Config, Debug, PartialEq)]
pub struct CategoricalInputConfig {
    /// How many categorical inputs each observation has.
    pub num_inputs: usize,
    /// Values are `0..vocab` (and −1 for "none" when `null_entry`).
    pub vocab: usize,
    /// Width of each embedding.
    pub d_embedding: usize,
    /// Whether −1 maps to an extra learned row (row `vocab`) rather than being an error.
    #[config(default = true)]
    pub null_entry: bool,
}

impl CategoricalInputConfig {
    /// Rows of the embedding table.
    pub fn num_rows(&self) -> usize {
        self.vocab + usize::from(self.null_entry)
    }

    /// Width of the flattened embeddings.
    pub fn d_output(&self) -> usize {
        self.num_inputs * self.d_embedding
    }
}

/// Configuration of a [`FactoredRecurrentActorCritic`](super::FactoredRecurrentActorCritic).
///
/// Everything is configurable; [`reference`](Self::reference) reproduces SPEC §4.
#[derive(Config, Debug, PartialEq)]
pub struct FactoredRecurrentActorCriticConfig {
    /// The factored action space (heads, op head, relevance, op-conditioned rules).
    pub action_space: ActionSpaceConfig,
    /// Number of continuous observation features.
    pub d_observation: usize,
    /// Categorical observation inputs, if any.
    #[config(default = "None")]
    pub categorical: Option<CategoricalInputConfig>,
    /// Width of the feature layer before the LSTM.
    #[config(default = 512)]
    pub d_feature: usize,
    /// Width of the LSTM state.
    #[config(default = 512)]
    pub d_hidden: usize,
    /// Number of LSTM layers.
    #[config(default = 1)]
    pub num_lstm_layers: usize,
    /// Hidden widths of each head's MLP, one list per head in the action space's order; an empty
    /// outer list gives every head `[256]`.
    #[config(default = "Vec::new()")]
    pub head_hidden: Vec<Vec<usize>>,
    /// Hidden widths of the critic (and of the `V(s)` head in `StateValue` mode).
    #[config(default = "vec![256]")]
    pub critic_hidden: Vec<usize>,
    /// How the value is formed.
    #[config(default = "ValueMode::SelectedOp")]
    pub value_mode: ValueMode,
    /// Seed of the parameter initialization.
    #[config(default = 0)]
    pub seed: u64,
}

impl FactoredRecurrentActorCriticConfig {
    /// The reference network of SPEC §4: 114 observation floats plus 3 blueprint indices in
    /// −1..12 through a 14×4 table (row 13 is the learned null entry) → 126 → Linear 512 →
    /// LayerNorm → ReLU → LSTM 512 → LayerNorm → 8 heads (512→256→n; blueprint 512→512→256→13)
    /// and Q(s, op) on concat(lstm_out, one_hot(op)) (518→256→1).
    pub fn reference() -> Self {
        let space = ActionSpace::reference();
        let head_hidden = space
            .heads()
            .iter()
            .map(|h| {
                if h.name == "blueprint" {
                    vec![512, 256]
                } else {
                    vec![256]
                }
            })
            .collect();
        Self::new(space.config().clone(), 114)
            .with_categorical(Some(CategoricalInputConfig::new(3, 13, 4)))
            .with_head_hidden(head_hidden)
    }

    /// The validated action space.
    ///
    /// # Errors
    /// The errors of [`ActionSpace::new`].
    pub fn space(&self) -> Result<ActionSpace> {
        ActionSpace::new(self.action_space.clone())
    }

    /// Width of the input to the feature layer (observation plus flattened embeddings).
    pub fn d_input(&self) -> usize {
        self.d_observation + self.categorical.as_ref().map_or(0, |c| c.d_output())
    }

    /// Hidden widths of head `index` (the default `[256]` when none are configured).
    pub fn hidden_of_head(&self, index: usize) -> Vec<usize> {
        self.head_hidden
            .get(index)
            .cloned()
            .unwrap_or_else(|| vec![256])
    }
}
