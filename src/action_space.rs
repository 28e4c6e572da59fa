//! The factored action space: ordered heads, the designated `op` head, causal relevance and
//! op-conditioned mask rules — all data, validated once (SPEC §2).
//!
//! A decision is one action per head. Given the chosen op, some heads do not matter (they are
//! *irrelevant*: they contribute nothing to the policy loss, the entropy bonus or the KL estimate),
//! and some heads are *restricted* (an op-conditioned rule intersects their mask with a fixed set of
//! allowed actions). Both tables live here, not in the network, so acting and re-evaluating stored
//! actions apply exactly the same rules.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One categorical sub-action: a name and its number of actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadSpec {
    /// The head's name, unique within the action space.
    pub name: String,
    /// The number of actions, at least 1.
    pub size: usize,
}

impl HeadSpec {
    /// A head called `name` with `size` actions.
    pub fn new(name: impl Into<String>, size: usize) -> Self {
        Self {
            name: name.into(),
            size,
        }
    }
}

/// When the chosen op is one of `ops`, the mask of `head` is intersected with `allowed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpMaskRule {
    /// The restricted head.
    pub head: String,
    /// The op values for which the rule applies.
    pub ops: Vec<usize>,
    /// The actions of `head` that remain allowed under those ops.
    pub allowed: Vec<usize>,
}

/// The serializable description of a factored action space; [`ActionSpace::new`] validates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSpaceConfig {
    /// The heads, in the order the network and the buffer use.
    pub heads: Vec<HeadSpec>,
    /// The name of the op head.
    pub op_head: String,
    /// `relevance[op][head]`: whether `head` matters when `op` is chosen. One row per op value,
    /// each with one entry per head. The op head must be relevant for every op.
    pub relevance: Vec<Vec<bool>>,
    /// Op-conditioned mask rules.
    #[serde(default)]
    pub op_mask_rules: Vec<OpMaskRule>,
}

/// A validated op-conditioned rule, by head index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedOpMaskRule {
    /// Index of the restricted head.
    pub head: usize,
    /// `applies[op]`: whether the rule applies under `op`.
    pub applies: Vec<bool>,
    /// `allowed[action]`: which actions of the head remain allowed.
    pub allowed: Vec<bool>,
}

/// A validated factored action space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSpace {
    config: ActionSpaceConfig,
    op_index: usize,
    rules: Vec<ResolvedOpMaskRule>,
}

/// Op values of the reference space (SPEC §2).
pub mod reference {
    /// Do nothing this step.
    pub const WAIT: usize = 0;
    /// Plant a seed of the chosen blueprint in the chosen slot.
    pub const GERMINATE: usize = 1;
    /// Change the blend target, speed and curve of a slot.
    pub const SET_ALPHA_TARGET: usize = 2;
    /// Remove a seed.
    pub const PRUNE: usize = 3;
    /// Make a seed permanent.
    pub const FOSSILIZE: usize = 4;
    /// Move a seed to its next stage.
    pub const ADVANCE: usize = 5;
    /// The op names, indexed by op value.
    pub const OP_NAMES: [&str; 6] = [
        "WAIT",
        "GERMINATE",
        "SET_ALPHA_TARGET",
        "PRUNE",
        "FOSSILIZE",
        "ADVANCE",
    ];
    /// The blend styles, indexed by style value.
    pub const STYLE_NAMES: [&str; 4] = ["LINEAR_ADD", "SIGMOID_ADD", "GATED_GATE", "MULTIPLY"];
    /// The style every op other than GERMINATE and SET_ALPHA_TARGET is restricted to.
    pub const SIGMOID_ADD: usize = 1;
    /// Head indices in the reference order.
    pub const SLOT: usize = 0;
    /// Index of the blueprint head.
    pub const BLUEPRINT: usize = 1;
    /// Index of the style head.
    pub const STYLE: usize = 2;
    /// Index of the tempo head.
    pub const TEMPO: usize = 3;
    /// Index of the alpha-target head.
    pub const ALPHA_TARGET: usize = 4;
    /// Index of the alpha-speed head.
    pub const ALPHA_SPEED: usize = 5;
    /// Index of the alpha-curve head.
    pub const ALPHA_CURVE: usize = 6;
    /// Index of the op head.
    pub const OP: usize = 7;
}

impl ActionSpace {
    /// Validates `config`.
    ///
    /// # Errors
    /// - [`Error::DuplicateHead`] for a repeated head name, [`Error::ZeroSizeHead`] for a head
    ///   of size 0;
    /// - [`Error::UnknownHead`] when `op_head` or a rule's head is not a head;
    /// - [`Error::WrongLength`] when the relevance table does not have one row per op value or
    ///   a row does not have one entry per head;
    /// - [`Error::Invalid`] when the op head is marked irrelevant, or a rule names an op or an
    ///   action outside its head, restricts the op head itself or allows nothing.
    pub fn new(config: ActionSpaceConfig) -> Result<Self> {
        if config.heads.is_empty() {
            return Err(Error::invalid(
                "heads",
                "an action space needs at least one head",
            ));
        }
        for (i, head) in config.heads.iter().enumerate() {
            if head.size == 0 {
                return Err(Error::ZeroSizeHead {
                    head: head.name.clone(),
                });
            }
            if config.heads[..i].iter().any(|h| h.name == head.name) {
                return Err(Error::DuplicateHead {
                    name: head.name.clone(),
                });
            }
        }
        let index_of = |name: &str| -> Result<usize> {
            config
                .heads
                .iter()
                .position(|h| h.name == name)
                .ok_or_else(|| Error::UnknownHead {
                    name: name.to_string(),
                    known: config
                        .heads
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        };
        let op_index = index_of(&config.op_head)?;
        let num_ops = config.heads[op_index].size;
        let num_heads = config.heads.len();
        if config.relevance.len() != num_ops {
            return Err(Error::WrongLength {
                what: format!(
                    "relevance table (one row per value of op head `{}`)",
                    config.op_head
                ),
                expected: num_ops,
                found: config.relevance.len(),
            });
        }
        for (op, row) in config.relevance.iter().enumerate() {
            if row.len() != num_heads {
                return Err(Error::WrongLength {
                    what: format!("relevance row for op {op} (one entry per head)"),
                    expected: num_heads,
                    found: row.len(),
                });
            }
            if !row[op_index] {
                return Err(Error::invalid(
                    format!("relevance[{op}]"),
                    format!(
                        "the op head `{}` must be relevant for every op",
                        config.op_head
                    ),
                ));
            }
        }
        let mut rules = Vec::with_capacity(config.op_mask_rules.len());
        for (r, rule) in config.op_mask_rules.iter().enumerate() {
            let head = index_of(&rule.head)?;
            let size = config.heads[head].size;
            let name = format!("op_mask_rules[{r}] (head `{}`)", rule.head);
            if head == op_index {
                return Err(Error::invalid(
                    name,
                    "a rule cannot restrict the op head itself",
                ));
            }
            let mut applies = vec![false; num_ops];
            for &op in &rule.ops {
                *applies.get_mut(op).ok_or_else(|| {
                    Error::invalid(&name, format!("op {op} is out of range (ops: {num_ops})"))
                })? = true;
            }
            let mut allowed = vec![false; size];
            for &action in &rule.allowed {
                *allowed.get_mut(action).ok_or_else(|| {
                    Error::invalid(
                        &name,
                        format!("action {action} is out of range (size {size})"),
                    )
                })? = true;
            }
            if !allowed.iter().any(|&a| a) {
                return Err(Error::invalid(name, "the rule allows no action"));
            }
            rules.push(ResolvedOpMaskRule {
                head,
                applies,
                allowed,
            });
        }
        Ok(Self {
            config,
            op_index,
            rules,
        })
    }

    /// The reference 8-head space of SPEC §2: slot 3, blueprint 13, style 4, tempo 3,
    /// alpha_target 3, alpha_speed 4, alpha_curve 5, op 6.
    pub fn reference() -> Self {
        use reference::*;
        let heads = [
            ("slot", 3),
            ("blueprint", 13),
            ("style", 4),
            ("tempo", 3),
            ("alpha_target", 3),
            ("alpha_speed", 4),
            ("alpha_curve", 5),
            ("op", 6),
        ]
        .into_iter()
        .map(|(name, size)| HeadSpec::new(name, size))
        .collect();
        let relevance = (0..OP_NAMES.len())
            .map(|op| {
                let mut row = vec![false; 8];
                row[SLOT] = op != WAIT;
                row[BLUEPRINT] = op == GERMINATE;
                row[TEMPO] = op == GERMINATE;
                row[STYLE] = op == GERMINATE || op == SET_ALPHA_TARGET;
                row[ALPHA_TARGET] = op == GERMINATE || op == SET_ALPHA_TARGET;
                row[ALPHA_SPEED] = op == SET_ALPHA_TARGET || op == PRUNE;
                row[ALPHA_CURVE] = op == SET_ALPHA_TARGET || op == PRUNE;
                row[OP] = true;
                row
            })
            .collect();
        let config = ActionSpaceConfig {
            heads,
            op_head: "op".into(),
            relevance,
            op_mask_rules: vec![OpMaskRule {
                head: "style".into(),
                ops: vec![WAIT, PRUNE, FOSSILIZE, ADVANCE],
                allowed: vec![SIGMOID_ADD],
            }],
        };
        Self::new(config).expect("the reference action space is valid")
    }

    /// A space with a single head that is also the op head (e.g. CartPole: one head of `size`).
    pub fn single(name: &str, size: usize) -> Result<Self> {
        Self::new(ActionSpaceConfig {
            heads: vec![HeadSpec::new(name, size)],
            op_head: name.into(),
            relevance: vec![vec![true]; size],
            op_mask_rules: vec![],
        })
    }

    /// The description this space was built from.
    pub fn config(&self) -> &ActionSpaceConfig {
        &self.config
    }

    /// The heads, in order.
    pub fn heads(&self) -> &[HeadSpec] {
        &self.config.heads
    }

    /// The number of heads.
    pub fn num_heads(&self) -> usize {
        self.config.heads.len()
    }

    /// The head sizes, in order.
    pub fn head_sizes(&self) -> Vec<usize> {
        self.config.heads.iter().map(|h| h.size).collect()
    }

    /// The index of the op head.
    pub fn op_index(&self) -> usize {
        self.op_index
    }

    /// The number of op values.
    pub fn num_ops(&self) -> usize {
        self.config.heads[self.op_index].size
    }

    /// The index of the head called `name`.
    ///
    /// # Errors
    /// [`Error::UnknownHead`] when there is none.
    pub fn head_index(&self, name: &str) -> Result<usize> {
        self.config
            .heads
            .iter()
            .position(|h| h.name == name)
            .ok_or_else(|| Error::UnknownHead {
                name: name.to_string(),
                known: self
                    .config
                    .heads
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Whether `head` matters when `op` is chosen (`false` for an out-of-range op).
    pub fn is_relevant(&self, op: usize, head: usize) -> bool {
        self.config
            .relevance
            .get(op)
            .and_then(|row| row.get(head))
            .copied()
            .unwrap_or(false)
    }

    /// The validated op-conditioned rules.
    pub fn op_mask_rules(&self) -> &[ResolvedOpMaskRule] {
        &self.rules
    }

    /// Applies the op-conditioned rules for `head` to one mask row in place, given the chosen op.
    /// Returns whether a rule changed the row.
    pub fn restrict_mask_row(&self, head: usize, op: usize, mask_row: &mut [bool]) -> bool {
        let mut changed = false;
        for rule in self
            .rules
            .iter()
            .filter(|r| r.head == head && r.applies.get(op).copied().unwrap_or(false))
        {
            for (m, &a) in mask_row.iter_mut().zip(&rule.allowed) {
                if *m && !a {
                    *m = false;
                    changed = true;
                }
            }
        }
        changed
    }

    /// Whether any rule restricts `head`.
    pub fn has_rules_for(&self, head: usize) -> bool {
        self.rules.iter().any(|r| r.head == head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ActionSpaceConfig {
        ActionSpaceConfig {
            heads: vec![HeadSpec::new("a", 2), HeadSpec::new("op", 2)],
            op_head: "op".into(),
            relevance: vec![vec![false, true], vec![true, true]],
            op_mask_rules: vec![],
        }
    }

    #[test]
    fn reference_space_matches_spec() {
        let space = ActionSpace::reference();
        assert_eq!(space.head_sizes(), vec![3, 13, 4, 3, 3, 4, 5, 6]);
        assert_eq!(space.op_index(), 7);
        use reference::*;
        assert!(!space.is_relevant(WAIT, SLOT));
        assert!(space.is_relevant(PRUNE, SLOT));
        assert!(space.is_relevant(GERMINATE, BLUEPRINT) && !space.is_relevant(PRUNE, BLUEPRINT));
        assert!(space.is_relevant(SET_ALPHA_TARGET, STYLE) && !space.is_relevant(FOSSILIZE, STYLE));
        assert!(
            space.is_relevant(PRUNE, ALPHA_CURVE) && !space.is_relevant(GERMINATE, ALPHA_SPEED)
        );
        let mut row = vec![true; 4];
        assert!(space.restrict_mask_row(STYLE, WAIT, &mut row));
        assert_eq!(row, vec![false, true, false, false]);
        let mut row = vec![true; 4];
        assert!(!space.restrict_mask_row(STYLE, GERMINATE, &mut row));
    }

    #[test]
    fn unknown_op_head_is_named() {
        let mut c = tiny();
        c.op_head = "nope".into();
        assert!(
            matches!(ActionSpace::new(c), Err(Error::UnknownHead { name, .. }) if name == "nope")
        );
    }

    #[test]
    fn zero_size_head_is_named() {
        let mut c = tiny();
        c.heads[0].size = 0;
        assert!(matches!(ActionSpace::new(c), Err(Error::ZeroSizeHead { head }) if head == "a"));
    }

    #[test]
    fn duplicate_head_is_named() {
        let mut c = tiny();
        c.heads[0].name = "op".into();
        assert!(matches!(ActionSpace::new(c), Err(Error::DuplicateHead { name }) if name == "op"));
    }

    #[test]
    fn relevance_rows_of_wrong_length_are_errors() {
        let mut c = tiny();
        c.relevance[1] = vec![true];
        assert!(matches!(
            ActionSpace::new(c),
            Err(Error::WrongLength {
                expected: 2,
                found: 1,
                ..
            })
        ));
        let mut c = tiny();
        c.relevance.pop();
        assert!(matches!(
            ActionSpace::new(c),
            Err(Error::WrongLength {
                expected: 2,
                found: 1,
                ..
            })
        ));
    }

    #[test]
    fn rule_with_unknown_head_or_bad_values_is_an_error() {
        let mut c = tiny();
        c.op_mask_rules.push(OpMaskRule {
            head: "b".into(),
            ops: vec![0],
            allowed: vec![0],
        });
        assert!(matches!(ActionSpace::new(c), Err(Error::UnknownHead { name, .. }) if name == "b"));
        let mut c = tiny();
        c.op_mask_rules.push(OpMaskRule {
            head: "a".into(),
            ops: vec![5],
            allowed: vec![0],
        });
        assert!(matches!(ActionSpace::new(c), Err(Error::Invalid { .. })));
        let mut c = tiny();
        c.op_mask_rules.push(OpMaskRule {
            head: "a".into(),
            ops: vec![0],
            allowed: vec![],
        });
        assert!(matches!(ActionSpace::new(c), Err(Error::Invalid { .. })));
    }

    #[test]
    fn op_head_must_be_relevant() {
        let mut c = tiny();
        c.relevance[0][1] = false;
        assert!(matches!(ActionSpace::new(c), Err(Error::Invalid { .. })));
    }

    #[test]
    fn config_round_trips_through_json() {
        let space = ActionSpace::reference();
        let json = serde_json::to_string(space.config()).unwrap();
        let back: ActionSpaceConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(ActionSpace::new(back).unwrap(), space);
    }
}
