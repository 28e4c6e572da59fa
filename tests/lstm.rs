//! The PyTorch-layout LSTM: multi-layer, resets, weight loading errors. Parity with torch.nn.LSTM
//! itself is checked by the conformance suite (`tests/fixtures/lstm`).

use factored_rl::Error;
use factored_rl::backend::default_device;
use factored_rl::burn::tensor::{Tensor, TensorData};
use factored_rl::nn::{Lstm, LstmConfig, LstmState, Placement};
use factored_rl::weights::{HostTensor, SafetensorsFile, write_f32_safetensors};

fn host(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn input(batch: usize, time: usize, d: usize) -> Tensor<3> {
    let values = (0..batch * time * d)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, time, d]), &default_device())
}

/// Writes the LSTM's parameters with PyTorch's names.
fn save_pytorch(lstm: &Lstm, path: &std::path::Path) {
    let mut tensors = Vec::new();
    for (k, layer) in lstm.layers.iter().enumerate() {
        for (name, t) in [
            ("weight_ih", layer.weight_ih.val().into_data()),
            ("weight_hh", layer.weight_hh.val().into_data()),
            ("bias_ih", layer.bias_ih.val().into_data()),
            ("bias_hh", layer.bias_hh.val().into_data()),
        ] {
            let shape = t.shape().to_vec();
            let values = t.try_into_vec_as::<f32>().unwrap();
            tensors.push((format!("lstm.{name}_l{k}"), HostTensor { shape, values }));
        }
    }
    write_f32_safetensors(path, &tensors).unwrap();
}

#[test]
fn multi_layer_weights_round_trip_through_pytorch_names() {
    let device = default_device();
    let lstm = LstmConfig::new(3, 4)
        .with_num_layers(3)
        .with_seed(5)
        .init(&device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lstm.safetensors");
    save_pytorch(&lstm, &path);
    let file = SafetensorsFile::open(&path).unwrap();
    let loaded = Lstm::from_pytorch_tensors(&file, "lstm.", &device).unwrap();
    assert_eq!(loaded.num_layers(), 3);
    assert_eq!((loaded.d_input(), loaded.d_hidden()), (3, 4));
    let state = LstmState::zeros(3, 2, 4, &device);
    let (a, _) = lstm.forward(input(2, 5, 3), state.clone(), None);
    let (b, _) = loaded.forward(input(2, 5, 3), state, None);
    assert_eq!(host(a), host(b));
}

#[test]
fn a_reset_equals_starting_that_row_from_zero() {
    let device = default_device();
    let lstm = LstmConfig::new(3, 4)
        .with_num_layers(2)
        .with_seed(1)
        .init(&device);
    let (batch, time) = (2, 6);
    let h0 = Tensor::<3>::ones([2, batch, 4], &device);
    let state = LstmState {
        hidden: h0.clone(),
        cell: h0,
    };
    // Row 1 starts an episode at t = 3.
    let mut starts = vec![0.0; batch * time];
    starts[time + 3] = 1.0;
    let starts = Tensor::<2>::from_data(TensorData::new(starts, [batch, time]), &device);
    let x = input(batch, time, 3);
    let (out, _) = lstm.forward(x.clone(), state, Some(starts));
    let out = host(out);
    // Steps 3.. of row 1 from a zero state.
    let tail = x.slice([1..2, 3..time]);
    let (tail_out, _) = lstm.forward(tail, LstmState::zeros(2, 1, 4, &device), None);
    let tail_out = host(tail_out);
    let row1_tail = &out[(time + 3) * 4..2 * time * 4];
    assert!(
        row1_tail
            .iter()
            .zip(&tail_out)
            .all(|(a, b)| (a - b).abs() < 1e-6)
    );
}

#[test]
fn loading_names_missing_and_misshapen_tensors() {
    let device = default_device();
    let lstm = LstmConfig::new(3, 4).init(&device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partial.safetensors");
    let w = |shape: Vec<usize>| HostTensor {
        values: vec![0.0; shape.iter().product()],
        shape,
    };
    write_f32_safetensors(
        &path,
        &[
            ("weight_ih_l0".into(), w(vec![16, 3])),
            ("weight_hh_l0".into(), w(vec![16, 5])),
        ],
    )
    .unwrap();
    let err = lstm
        .clone()
        .load_pytorch_safetensors(&path, "")
        .unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { name, .. } if name.contains("weight_hh_l0")),
        "{err}"
    );

    write_f32_safetensors(
        &path,
        &[
            ("weight_ih_l0".into(), w(vec![16, 3])),
            ("weight_hh_l0".into(), w(vec![16, 4])),
        ],
    )
    .unwrap();
    let err = lstm.load_pytorch_safetensors(&path, "").unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { key, file } if key == "bias_ih_l0" && file == &path),
        "{err}"
    );

    std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    assert!(matches!(
        SafetensorsFile::open(&path),
        Err(Error::Corrupt { .. })
    ));
}

/// The hand-written backward pass equals burn's autodiff of `forward`, multi-layer, with resets
/// and a non-zero initial state, with the recurrence on the host and on the device. Five
/// sequences split the host recurrence's per-step work unevenly over the cores (3 + 2 on two).
#[test]
fn hand_written_bptt_matches_autodiff() {
    for batch in [3, 5] {
        hand_written_bptt_matches_autodiff_on(Placement::Host, batch, 5);
        hand_written_bptt_matches_autodiff_on(Placement::Device, batch, 5);
    }
    // Wide enough that, on two cores or more, the host recurrence's products are split by columns
    // over the cores (the recurrent term then arrives in pieces).
    hand_written_bptt_matches_autodiff_on(Placement::Host, 5, 192);
    assert_eq!(
        Placement::for_device(&default_device().autodiff()),
        Placement::Host
    );
}

fn hand_written_bptt_matches_autodiff_on(placement: Placement, batch: usize, d_hidden: usize) {
    let device = default_device().autodiff();
    let lstm = LstmConfig::new(3, d_hidden)
        .with_num_layers(2)
        .with_seed(4)
        .init(&device);
    let time = 7;
    let x = Tensor::<3>::from_data(input(batch, time, 3).into_data(), &device).require_grad();
    let state = LstmState {
        hidden: Tensor::<3>::ones([2, batch, d_hidden], &device).mul_scalar(0.3),
        cell: Tensor::<3>::ones([2, batch, d_hidden], &device).mul_scalar(-0.2),
    };
    let mut starts = vec![0.0; batch * time];
    starts[time + 2] = 1.0;
    starts[2 * time + 4] = 1.0;
    starts[(batch - 1) * time + 1] = 1.0;
    let starts = Tensor::<2>::from_data(TensorData::new(starts, [batch, time]), &device);
    // A loss that weights every output differently.
    let weights: Vec<f32> = (0..batch * time * d_hidden)
        .map(|i| ((i * 13 % 7) as f32 - 3.0) / 3.0)
        .collect();
    let weights =
        Tensor::<3>::from_data(TensorData::new(weights, [batch, time, d_hidden]), &device);

    let (out, final_state) = lstm.forward(x.clone(), state.clone(), Some(starts.clone()));
    let grads = (out.clone() * weights.clone()).sum().backward();

    let (out_fused, final_fused, tape) =
        lstm.forward_for_backward_on(placement, x.clone(), state.clone(), Some(starts.clone()));
    let close = |a: Vec<f32>, b: Vec<f32>, what: &str| {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 + 1e-4 * y.abs(),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    };
    let host = |t: Tensor<3>| t.into_data().try_into_vec_as::<f32>().unwrap();
    close(host(out_fused), host(out), "output");
    close(
        host(final_fused.hidden),
        host(final_state.hidden.inner()),
        "final hidden",
    );
    close(
        host(final_fused.cell),
        host(final_state.cell.inner()),
        "final cell",
    );
    let fused = lstm.backward(tape, weights.inner());
    close(host(fused.input), host(x.grad(&grads).unwrap()), "d_input");
    let flat2 = |t: Tensor<2>| t.into_data().try_into_vec_as::<f32>().unwrap();
    let flat1 = |t: Tensor<1>| t.into_data().try_into_vec_as::<f32>().unwrap();
    for (k, (layer, g)) in lstm.layers.iter().zip(fused.layers).enumerate() {
        close(
            flat2(g.weight_ih),
            flat2(layer.weight_ih.val().grad(&grads).unwrap()),
            &format!("weight_ih_l{k}"),
        );
        close(
            flat2(g.weight_hh),
            flat2(layer.weight_hh.val().grad(&grads).unwrap()),
            &format!("weight_hh_l{k}"),
        );
        close(
            flat1(g.bias.clone()),
            flat1(layer.bias_ih.val().grad(&grads).unwrap()),
            &format!("bias_ih_l{k}"),
        );
        close(
            flat1(g.bias),
            flat1(layer.bias_hh.val().grad(&grads).unwrap()),
            &format!("bias_hh_l{k}"),
        );
    }
}
