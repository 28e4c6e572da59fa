//! Mask checks shared by every env, the [`VecEnv`](super::VecEnv) and the reference policies:
//! what is allowed for a head once the op is chosen, action validation with named errors, and a
//! uniform random policy over the allowed actions.

use rand::{Rng, RngExt};

use super::ConditionalMask;
use crate::action_space::ActionSpace;
use crate::error::{Error, Result};

/// Whether action `action` of `head` is allowed once `op` is chosen: the head's mask, the space's
/// static op-conditioned rules and the env's conditional masks all allow it. The op head itself is
/// only subject to its own mask. `action` must be in range.
fn is_allowed(
    space: &ActionSpace,
    masks: &[Vec<bool>],
    conditional: &[ConditionalMask],
    head: usize,
    op: usize,
    action: usize,
) -> bool {
    if !masks[head][action] {
        return false;
    }
    if head == space.op_index() {
        return true;
    }
    let static_ok = space
        .op_mask_rules()
        .iter()
        .filter(|rule| rule.head == head && rule.applies.get(op).copied().unwrap_or(false))
        .all(|rule| rule.allowed[action]);
    static_ok
        && conditional
            .iter()
            .filter(|c| c.head == head)
            .all(|c| c.by_op.get(op).is_some_and(|row| row[action]))
}

/// Writes into `out` the mask row of `head` once `op` is chosen: `masks[head]` restricted by the
/// space's op-conditioned rules and by the env's conditional masks (the op head's own row is
/// returned unchanged).
///
/// # Shapes
/// - `masks[h]`: `size_h` booleans (one env)
/// - `out`: resized to `size_head`
pub fn effective_mask_row(
    space: &ActionSpace,
    masks: &[Vec<bool>],
    conditional: &[ConditionalMask],
    head: usize,
    op: usize,
    out: &mut Vec<bool>,
) {
    out.clear();
    let Some(row) = masks.get(head) else {
        return;
    };
    out.extend_from_slice(row);
    if head == space.op_index() {
        return;
    }
    space.restrict_mask_row(head, op, out);
    for c in conditional.iter().filter(|c| c.head == head) {
        match c.by_op.get(op) {
            Some(row) => out.iter_mut().zip(row).for_each(|(m, &a)| *m &= a),
            None => out.fill(false),
        }
    }
}

/// Whether `head`'s row can depend on the op (a static rule or a conditional mask restricts it).
fn is_restricted(space: &ActionSpace, conditional: &[ConditionalMask], head: usize) -> bool {
    head != space.op_index()
        && (space.has_rules_for(head) || conditional.iter().any(|c| c.head == head))
}

/// Checks that `masks` has one row per head, each of the head's size.
///
/// # Errors
/// [`Error::WrongLength`] for a wrong number of rows; [`Error::ShapeMismatch`] naming the head.
pub(crate) fn check_mask_shapes(space: &ActionSpace, masks: &[Vec<bool>]) -> Result<()> {
    let heads = space.heads();
    if masks.len() != heads.len() {
        return Err(Error::WrongLength {
            what: "masks (one per head)".into(),
            expected: heads.len(),
            found: masks.len(),
        });
    }
    for (spec, mask) in heads.iter().zip(masks) {
        if mask.len() != spec.size {
            return Err(Error::ShapeMismatch {
                name: format!("mask of head `{}`", spec.name),
                expected: vec![spec.size],
                found: vec![mask.len()],
            });
        }
    }
    Ok(())
}

/// Checks that every conditional mask names a non-op head and has one row per op of the head's
/// size.
///
/// # Errors
/// [`Error::Invalid`] for a bad head index or the op head; [`Error::WrongLength`] for a wrong
/// number of rows; [`Error::ShapeMismatch`] for a row of the wrong size.
pub(crate) fn check_conditional_shapes(
    space: &ActionSpace,
    conditional: &[ConditionalMask],
) -> Result<()> {
    let heads = space.heads();
    let num_ops = space.num_ops();
    for c in conditional {
        let spec = heads.get(c.head).ok_or_else(|| {
            Error::invalid(
                "conditional mask",
                format!("head index {} is out of range", c.head),
            )
        })?;
        if c.head == space.op_index() {
            return Err(Error::invalid(
                format!("conditional mask of head `{}`", spec.name),
                "the op head cannot be conditioned on itself",
            ));
        }
        if c.by_op.len() != num_ops {
            return Err(Error::WrongLength {
                what: format!("conditional mask of head `{}` (one row per op)", spec.name),
                expected: num_ops,
                found: c.by_op.len(),
            });
        }
        if let Some(bad) = c.by_op.iter().find(|r| r.len() != spec.size) {
            return Err(Error::ShapeMismatch {
                name: format!("conditional mask row of head `{}`", spec.name),
                expected: vec![spec.size],
                found: vec![bad.len()],
            });
        }
    }
    Ok(())
}

/// Checks one env's masks: one row per head of the head's size, conditional masks of the right
/// shape, and no empty row — neither a head's own row nor, for every op the op mask allows, the
/// row of any other head once that op is chosen.
///
/// # Errors
/// [`Error::WrongLength`] for a wrong number of heads or ops; [`Error::ShapeMismatch`] for a row
/// of the wrong size; [`Error::EmptyMask`] naming the head and `row`.
pub fn validate_masks(
    space: &ActionSpace,
    masks: &[Vec<bool>],
    conditional: &[ConditionalMask],
    row: usize,
) -> Result<()> {
    check_mask_shapes(space, masks)?;
    let heads = space.heads();
    for (spec, mask) in heads.iter().zip(masks) {
        if !mask.iter().any(|&m| m) {
            return Err(Error::EmptyMask {
                head: spec.name.clone(),
                row,
            });
        }
    }
    check_conditional_shapes(space, conditional)?;
    let num_ops = space.num_ops();
    let op_index = space.op_index();
    // Unrestricted heads keep their own (already checked) row under every op.
    let restricted: Vec<usize> = (0..heads.len())
        .filter(|&h| is_restricted(space, conditional, h))
        .collect();
    for op in (0..num_ops).filter(|&op| masks[op_index][op]) {
        for &head in &restricted {
            let spec = &heads[head];
            if !(0..spec.size).any(|a| is_allowed(space, masks, conditional, head, op, a)) {
                return Err(Error::EmptyMask {
                    head: format!("{} (under op {op})", spec.name),
                    row,
                });
            }
        }
    }
    Ok(())
}

/// Checks one env's action against its masks: one index per head, each in range, the op allowed,
/// and every other head allowed once that op is chosen (see [`effective_mask_row`]).
///
/// # Errors
/// [`Error::WrongLength`] for a wrong number of heads; [`Error::ActionOutOfRange`] or
/// [`Error::MaskedAction`] naming the head, with `row` as the batch row; the shape errors of
/// [`validate_masks`] for malformed masks.
pub fn validate_action(
    space: &ActionSpace,
    masks: &[Vec<bool>],
    conditional: &[ConditionalMask],
    action: &[usize],
    row: usize,
) -> Result<()> {
    let heads = space.heads();
    if action.len() != heads.len() {
        return Err(Error::WrongLength {
            what: format!("action of row {row} (one index per head)"),
            expected: heads.len(),
            found: action.len(),
        });
    }
    for (spec, &a) in heads.iter().zip(action) {
        if a >= spec.size {
            return Err(Error::ActionOutOfRange {
                head: spec.name.clone(),
                row,
                action: a,
                size: spec.size,
            });
        }
    }
    check_mask_shapes(space, masks)?;
    check_conditional_shapes(space, conditional)?;
    let op_index = space.op_index();
    let op = action[op_index];
    // The op is checked first: the other heads' rows depend on it.
    let order = std::iter::once(op_index).chain((0..heads.len()).filter(|&h| h != op_index));
    for head in order {
        if !is_allowed(space, masks, conditional, head, op, action[head]) {
            return Err(Error::MaskedAction {
                head: heads[head].name.clone(),
                row,
                action: action[head],
            });
        }
    }
    Ok(())
}

/// A uniformly random allowed action: the op uniformly among the allowed ops, then every other
/// head uniformly among its actions allowed under that op. This is the "random" reference policy
/// of every env.
///
/// # Errors
/// [`Error::EmptyMask`] (row 0) when some row allows nothing; the shape errors of
/// [`validate_masks`] for malformed masks.
pub fn random_action<R: Rng + ?Sized>(
    space: &ActionSpace,
    masks: &[Vec<bool>],
    conditional: &[ConditionalMask],
    rng: &mut R,
) -> Result<Vec<usize>> {
    check_mask_shapes(space, masks)?;
    check_conditional_shapes(space, conditional)?;
    let op_index = space.op_index();
    let mut action = vec![0; space.num_heads()];
    let mut row = Vec::new();
    let mut pick = |head: usize, op: usize, row: &mut Vec<bool>| -> Result<usize> {
        effective_mask_row(space, masks, conditional, head, op, row);
        let count = row.iter().filter(|&&m| m).count();
        if count == 0 {
            return Err(Error::EmptyMask {
                head: space.heads()[head].name.clone(),
                row: 0,
            });
        }
        let k = rng.random_range(0..count);
        Ok(row
            .iter()
            .enumerate()
            .filter(|&(_, &m)| m)
            .nth(k)
            .map_or(0, |(a, _)| a))
    };
    // The op head's row does not depend on the op, so any op value works for this call.
    let op = pick(op_index, 0, &mut row)?;
    action[op_index] = op;
    for (head, slot) in action.iter_mut().enumerate() {
        if head != op_index {
            *slot = pick(head, op, &mut row)?;
        }
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action_space::reference::*;

    fn all_allowed(space: &ActionSpace) -> Vec<Vec<bool>> {
        space.head_sizes().iter().map(|&n| vec![true; n]).collect()
    }

    #[test]
    fn style_rule_and_conditional_mask_both_restrict() {
        let space = ActionSpace::reference();
        let masks = all_allowed(&space);
        let mut by_op = vec![vec![true; 3]; 6];
        by_op[PRUNE] = vec![false, true, false];
        let conditional = vec![ConditionalMask { head: SLOT, by_op }];
        let mut row = Vec::new();
        effective_mask_row(&space, &masks, &conditional, SLOT, PRUNE, &mut row);
        assert_eq!(row, vec![false, true, false]);
        effective_mask_row(&space, &masks, &conditional, STYLE, PRUNE, &mut row);
        assert_eq!(row, vec![false, true, false, false]);
        effective_mask_row(&space, &masks, &conditional, STYLE, GERMINATE, &mut row);
        assert_eq!(row, vec![true; 4]);

        let mut action = vec![0, 0, SIGMOID_ADD, 0, 0, 0, 0, PRUNE];
        assert!(matches!(
            validate_action(&space, &masks, &conditional, &action, 4),
            Err(Error::MaskedAction { head, row: 4, action: 0 }) if head == "slot"
        ));
        action[SLOT] = 1;
        validate_action(&space, &masks, &conditional, &action, 4).unwrap();
        action[STYLE] = 0;
        assert!(matches!(
            validate_action(&space, &masks, &conditional, &action, 4),
            Err(Error::MaskedAction { head, .. }) if head == "style"
        ));
    }

    #[test]
    fn empty_rows_are_named() {
        let space = ActionSpace::reference();
        let mut masks = all_allowed(&space);
        masks[TEMPO] = vec![false; 3];
        assert!(matches!(
            validate_masks(&space, &masks, &[], 2),
            Err(Error::EmptyMask { head, row: 2 }) if head == "tempo"
        ));
        let masks = all_allowed(&space);
        let mut by_op = vec![vec![true; 3]; 6];
        by_op[FOSSILIZE] = vec![false; 3];
        let conditional = vec![ConditionalMask { head: SLOT, by_op }];
        assert!(matches!(
            validate_masks(&space, &masks, &conditional, 0),
            Err(Error::EmptyMask { head, .. }) if head.starts_with("slot")
        ));
    }
}
