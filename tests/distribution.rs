//! Masked categorical distributions (SPEC §3): exact zeros, masks respected by every decision,
//! finite gradients, seeded sampling that matches `probs`, and named errors.

use factored_rl::Error;
use factored_rl::action_space::{ActionSpace, reference};
use factored_rl::backend::default_device;
use factored_rl::burn::tensor::{Tensor, TensorData};
use factored_rl::distribution::{FactoredDistribution, MaskedCategorical};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Rows whose raw argmax is masked, one row with a single allowed action.
fn fixture() -> (Tensor<2>, Vec<bool>) {
    let logits = vec![
        5.0, 0.1, 0.2, 0.3, // argmax 0 masked
        0.0, 0.0, 9.0, 1.0, // argmax 2 masked
        3.0, 1.0, 2.0, 0.5, // one allowed action (3)
        -1.0, 2.0, 0.5, 0.0, // argmax 1 allowed
    ];
    let mask = vec![
        false, true, true, true, //
        true, true, false, true, //
        false, false, false, true, //
        true, true, true, false,
    ];
    let logits = Tensor::<2>::from_data(TensorData::new(logits, [4, 4]), &default_device());
    (logits, mask)
}

fn host2(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn host1(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn masked_probabilities_are_exactly_zero_and_rows_sum_to_one() {
    let (logits, mask) = fixture();
    let dist = MaskedCategorical::new("h", logits, &mask).unwrap();
    let probs = host2(dist.probs());
    for (p, m) in probs.iter().zip(&mask) {
        if !m {
            assert_eq!(*p, 0.0);
        }
        assert!(p.is_finite());
    }
    for row in probs.chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    assert!(host2(dist.log_probs()).iter().all(|v| v.is_finite()));
}

#[test]
fn argmax_is_never_masked() {
    let (logits, mask) = fixture();
    let dist = MaskedCategorical::new("h", logits, &mask).unwrap();
    assert_eq!(dist.mode(), vec![3, 3, 3, 1]);
}

#[test]
fn sampling_never_returns_a_masked_action_in_10000_draws() {
    let (logits, mask) = fixture();
    let dist = MaskedCategorical::new("h", logits, &mask).unwrap();
    let mut rng = StdRng::seed_from_u64(17);
    for _ in 0..10_000 {
        for (row, &a) in dist.sample(&mut rng).iter().enumerate() {
            assert!(mask[row * 4 + a], "row {row} sampled masked action {a}");
        }
    }
}

#[test]
fn normalized_entropy_is_exactly_zero_with_one_allowed_action() {
    let (logits, mask) = fixture();
    let dist = MaskedCategorical::new("h", logits, &mask).unwrap();
    let entropy = host1(dist.entropy());
    let normalized = host1(dist.normalized_entropy());
    assert_eq!(entropy[2], 0.0);
    assert_eq!(normalized[2], 0.0);
    // Other rows: H / ln(allowed) within (0, 1].
    for row in [0, 1, 3] {
        assert!(normalized[row] > 0.0 && normalized[row] <= 1.0 + 1e-6);
        assert!((normalized[row] - entropy[row] / 3f32.ln()).abs() < 1e-6);
    }
    // Uniform logits over the allowed actions give exactly maximal normalized entropy.
    let uniform = Tensor::<2>::zeros([1, 4], &default_device());
    let dist = MaskedCategorical::new("h", uniform, &[true, false, true, true]).unwrap();
    assert!((host1(dist.normalized_entropy())[0] - 1.0).abs() < 1e-6);
}

#[test]
fn gradients_of_log_prob_and_entropy_are_finite_with_masks() {
    let device = default_device().autodiff();
    let (logits, mask) = fixture();
    let logits = Tensor::<2>::from_data(logits.into_data(), &device).require_grad();
    let dist = MaskedCategorical::new("h", logits.clone(), &mask).unwrap();
    let loss = dist.log_prob_checked(&[1, 3, 3, 2]).unwrap().sum()
        + dist.entropy().sum()
        + dist.normalized_entropy().sum();
    let grads = loss.backward();
    let g = host2(logits.grad(&grads).unwrap());
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    // Masked logits receive no gradient; the single-action row receives none at all.
    for (v, m) in g.iter().zip(&mask) {
        if !m {
            assert_eq!(*v, 0.0);
        }
    }
    assert!(g[8..12].iter().all(|v| *v == 0.0));
    assert!(g[0..4].iter().any(|v| *v != 0.0));
}

#[test]
fn empirical_frequencies_match_probs() {
    let logits = Tensor::<2>::from_data(
        TensorData::new(vec![0.3f32, -1.0, 1.2, 0.0, 0.7], [1, 5]),
        &default_device(),
    );
    let mask = [true, true, true, false, true];
    let dist = MaskedCategorical::new("h", logits, &mask).unwrap();
    let probs = host2(dist.probs());
    let mut rng = StdRng::seed_from_u64(3);
    let draws = 40_000;
    let mut counts = [0usize; 5];
    for _ in 0..draws {
        counts[dist.sample(&mut rng)[0]] += 1;
    }
    // Pearson chi-square over the 4 allowed actions (3 degrees of freedom): the 0.999 quantile
    // is 16.27.
    let chi2: f64 = (0..5)
        .filter(|&a| mask[a])
        .map(|a| {
            let expected = probs[a] as f64 * draws as f64;
            (counts[a] as f64 - expected).powi(2) / expected
        })
        .sum();
    assert!(
        chi2 < 16.27,
        "chi-square {chi2} for counts {counts:?} vs probs {probs:?}"
    );
    assert_eq!(counts[3], 0);
}

#[test]
fn same_seed_gives_same_samples() {
    let (logits, mask) = fixture();
    let dist = MaskedCategorical::new("h", logits, &mask).unwrap();
    let draw = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..50)
            .flat_map(|_| dist.sample(&mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(8), draw(8));
    assert_ne!(draw(8), draw(9));
}

#[test]
fn empty_row_names_head_and_row() {
    let (logits, mut mask) = fixture();
    mask[4..8].fill(false);
    let err = MaskedCategorical::new("blueprint", logits, &mask).unwrap_err();
    assert!(
        matches!(&err, Error::EmptyMask { head, row: 1 } if head == "blueprint"),
        "{err}"
    );
}

#[test]
fn checked_log_prob_rejects_masked_out_of_range_and_miscounted_actions() {
    let (logits, mask) = fixture();
    let dist = MaskedCategorical::new("tempo", logits, &mask).unwrap();
    assert!(matches!(
        dist.log_prob_checked(&[1, 2, 3, 0]),
        Err(Error::MaskedAction { head, row: 1, action: 2 }) if head == "tempo"
    ));
    assert!(matches!(
        dist.log_prob_checked(&[1, 0, 3, 7]),
        Err(Error::ActionOutOfRange {
            row: 3,
            action: 7,
            size: 4,
            ..
        })
    ));
    assert!(matches!(
        dist.log_prob_checked(&[1, 0]),
        Err(Error::ShapeMismatch { .. })
    ));
    let (logits, _) = fixture();
    assert!(matches!(
        MaskedCategorical::new("tempo", logits, &[true; 3]),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn factored_distribution_applies_op_rules_once_op_is_known() {
    let space = ActionSpace::reference();
    let device = default_device();
    let batch = 2;
    let logits: Vec<Tensor<2>> = space
        .heads()
        .iter()
        .map(|h| Tensor::zeros([batch, h.size], &device))
        .collect();
    let masks: Vec<Vec<bool>> = space
        .heads()
        .iter()
        .map(|h| vec![true; batch * h.size])
        .collect();
    let dist = FactoredDistribution::new(&space, logits.clone(), &masks).unwrap();
    let dist = dist
        .condition_on_ops(&[reference::WAIT, reference::GERMINATE])
        .unwrap();
    let style = dist.head(reference::STYLE);
    assert_eq!(style.mask_row(0), &[false, true, false, false]);
    assert_eq!(style.mask_row(1), &[true; 4]);
    assert_eq!(style.mode()[0], reference::SIGMOID_ADD);
    let relevance = dist.relevance(&[reference::WAIT, reference::GERMINATE]);
    assert_eq!(relevance[reference::SLOT], vec![0.0, 1.0]);
    assert_eq!(relevance[reference::BLUEPRINT], vec![0.0, 1.0]);
    assert_eq!(relevance[reference::OP], vec![1.0, 1.0]);

    // Under WAIT, style 0 is masked by the rule: the checked API says so.
    let mut actions: Vec<Vec<usize>> = vec![vec![0; batch]; space.num_heads()];
    actions[reference::OP] = vec![reference::WAIT, reference::GERMINATE];
    assert!(matches!(
        dist.log_probs(&actions),
        Err(Error::MaskedAction { head, row: 0, action: 0 }) if head == "style"
    ));

    // Errors: wrong number of heads, wrong head width, a masked op.
    assert!(matches!(
        FactoredDistribution::new(&space, logits[..3].to_vec(), &masks),
        Err(Error::WrongLength {
            expected: 8,
            found: 3,
            ..
        })
    ));
    let mut wrong = logits.clone();
    wrong[1] = Tensor::zeros([batch, 12], &device);
    assert!(matches!(
        FactoredDistribution::new(&space, wrong, &masks),
        Err(Error::ShapeMismatch { name, .. }) if name.contains("blueprint")
    ));
    let mut op_masked = masks.clone();
    op_masked[reference::OP][reference::PRUNE] = false;
    let dist = FactoredDistribution::new(&space, logits, &op_masked).unwrap();
    assert!(matches!(
        dist.condition_on_ops(&[reference::PRUNE, 0]),
        Err(Error::MaskedAction { head, row: 0, .. }) if head == "op"
    ));
}
