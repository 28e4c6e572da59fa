//! `lstm/`: every `*.safetensors`; sizes and layer count from the tensor shapes.

use std::path::Path;

use factored_rl::backend::default_device;
use factored_rl::burn::tensor::Tensor;
use factored_rl::nn::{Lstm, LstmState};
use factored_rl::weights::SafetensorsFile;

use super::support::{Comparison, report};

const TOL: f64 = 1e-5;

pub fn check(path: &Path, case: &str) -> bool {
    let mut cmp = Comparison::default();
    if let Err(e) = run(path, &mut cmp) {
        cmp.fail(e.to_string());
    }
    report("lstm", case, &cmp)
}

fn run(path: &Path, cmp: &mut Comparison) -> factored_rl::Result<()> {
    let device = default_device();
    let file = SafetensorsFile::open(path)?;
    let lstm = Lstm::from_pytorch_tensors(&file, "", &device)?;
    let tensor3 = |key: &str| file.read(key)?.to_tensor::<3>(key, &device);
    let host = |t: Tensor<3>| t.into_data().try_into_vec_as::<f32>().unwrap();
    let expected = |key: &str| -> factored_rl::Result<Vec<f64>> {
        Ok(file.read(key)?.values.iter().map(|&v| v as f64).collect())
    };
    let state = LstmState {
        hidden: tensor3("h0")?,
        cell: tensor3("c0")?,
    };
    let (output, last) = lstm.forward(tensor3("input")?, state.clone(), None);
    cmp.close("output", &host(output), &expected("output")?, TOL, 0.0);
    cmp.close("hn", &host(last.hidden), &expected("hn")?, TOL, 0.0);
    cmp.close("cn", &host(last.cell), &expected("cn")?, TOL, 0.0);

    let starts = file
        .read("episode_starts")?
        .to_tensor::<2>("episode_starts", &device)?;
    let (output, last) = lstm.forward(tensor3("input")?, state, Some(starts));
    cmp.close(
        "output_reset",
        &host(output),
        &expected("output_reset")?,
        TOL,
        0.0,
    );
    cmp.close(
        "hn_reset",
        &host(last.hidden),
        &expected("hn_reset")?,
        TOL,
        0.0,
    );
    cmp.close(
        "cn_reset",
        &host(last.cell),
        &expected("cn_reset")?,
        TOL,
        0.0,
    );
    Ok(())
}
