//! `olmoe/`: every sub-folder is a Hugging Face checkpoint folder with `expected.json` and
//! `expected.safetensors` from transformers. Sizes come from the folder's config; a reference
//! tensor the folder lacks is skipped.

use std::path::Path;

use factored_rl::backend::default_device;
use factored_rl::burn::tensor::Tensor;
use factored_rl::olmoe::encoder::mean_pooled;
use factored_rl::olmoe::{ForwardOptions, OlmoeEncoder, TokenBatch};
use factored_rl::weights::SafetensorsFile;
use serde_json::Value;

use super::support::{Comparison, read_json, report};

const ABS_TOL: f64 = 1e-4;
const REL_TOL: f64 = 1e-4;

pub fn check(path: &Path, case: &str) -> bool {
    let mut cmp = Comparison::default();
    if let Err(e) = run(path, &mut cmp) {
        cmp.fail(e.to_string());
    }
    report("olmoe", case, &cmp)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an array of ids")
        .iter()
        .map(|v| v.as_u64().expect("an id") as u32)
        .collect()
}

fn rows(value: &Value) -> Vec<Vec<u32>> {
    value
        .as_array()
        .expect("an array of rows")
        .iter()
        .map(ids)
        .collect()
}

fn run(dir: &Path, cmp: &mut Comparison) -> factored_rl::Result<()> {
    let device = default_device();
    let meta = read_json(&dir.join("expected.json"));
    let expected = SafetensorsFile::open(dir.join("expected.safetensors"))?;
    let reference = |key: &str| -> factored_rl::Result<Option<Vec<f64>>> {
        if !expected.contains(key) {
            return Ok(None);
        }
        Ok(Some(
            expected
                .read(key)?
                .values
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
        ))
    };
    let encoder = OlmoeEncoder::load(dir, &device)?;
    let model = &encoder.model;
    let hidden = encoder.hidden_size();
    let texts: Vec<&str> = meta["texts"]
        .as_array()
        .expect("`texts`")
        .iter()
        .map(|t| t.as_str().expect("a text"))
        .collect();
    let token_ids = rows(&meta["token_ids"]);

    for (i, text) in texts.iter().enumerate() {
        let ids = encoder.token_ids(text)?;
        cmp.exact(&format!("token_ids[{i}]"), &ids, &token_ids[i]);
        let tokens = TokenBatch::right_padded(&[token_ids[i].clone()], encoder.pad_id())?;
        if let Some(want) = reference(&format!("text_{i}.last_hidden"))? {
            let out = model.forward(&tokens, ForwardOptions::default())?;
            cmp.close(
                &format!("text_{i}.last_hidden"),
                &host(out.last_hidden),
                &want,
                ABS_TOL,
                REL_TOL,
            );
        }
        if let Some(want) = reference(&format!("text_{i}.mean"))? {
            let got = host(encoder.encode(text)?);
            cmp.close(
                &format!("text_{i}.mean (encode)"),
                &got,
                &want,
                ABS_TOL,
                REL_TOL,
            );
            let got = encoder.embed(text)?;
            cmp.close(
                &format!("text_{i}.mean (embed)"),
                &got,
                &want,
                ABS_TOL,
                REL_TOL,
            );
        }
    }

    let batch = &meta["batch"];
    if batch.is_object() {
        let input_ids = rows(&batch["input_ids"]);
        let mask = rows(&batch["attention_mask"]);
        let tokens = TokenBatch::from_padded(&input_ids, &mask)?;
        if let Some(want) = reference("batch.last_hidden")? {
            let got = host(
                model
                    .forward(&tokens, ForwardOptions::default())?
                    .last_hidden,
            );
            // Only the real (mask 1) positions are defined.
            let (mut real_got, mut real_want) = (Vec::new(), Vec::new());
            for (position, &m) in mask.concat().iter().enumerate() {
                if m == 1 {
                    let span = position * hidden..(position + 1) * hidden;
                    real_got.extend_from_slice(&got[span.clone()]);
                    real_want.extend_from_slice(&want[span]);
                }
            }
            cmp.close("batch.last_hidden", &real_got, &real_want, ABS_TOL, REL_TOL);
        }
        if let Some(want) = reference("batch.mean_pooled")? {
            let got = host(mean_pooled(model, &tokens)?);
            cmp.close("batch.mean_pooled", &got, &want, ABS_TOL, REL_TOL);
            let batch_texts: Vec<&str> = batch["texts"]
                .as_array()
                .expect("`batch.texts`")
                .iter()
                .map(|t| t.as_str().expect("a text"))
                .collect();
            let got = host(encoder.encode_batch(&batch_texts)?);
            cmp.close(
                "batch.mean_pooled (encode_batch)",
                &got,
                &want,
                ABS_TOL,
                REL_TOL,
            );
        }
    }

    if let Some(index) = meta["logits_text"].as_u64() {
        let tokens = TokenBatch::right_padded(&[token_ids[index as usize].clone()], 0)?;
        let out = model.forward(
            &tokens,
            ForwardOptions {
                hidden_states: true,
                router_logits: true,
                logits: true,
                ..ForwardOptions::default()
            },
        )?;
        if let Some(want) = reference("logits")? {
            let got = host(out.logits.expect("logits were asked for"));
            cmp.close("logits", &got, &want, ABS_TOL, REL_TOL);
        }
        if let Some(want) = reference("logits_text.hidden_states")? {
            let got: Vec<f32> = out.hidden_states.into_iter().flat_map(host).collect();
            cmp.close("logits_text.hidden_states", &got, &want, ABS_TOL, REL_TOL);
        }
        if let Some(want) = reference("logits_text.pre_norm_last")? {
            let got = host(out.pre_norm_last);
            cmp.close("logits_text.pre_norm_last", &got, &want, ABS_TOL, REL_TOL);
        }
        if let Some(want) = reference("logits_text.router_logits")? {
            let got: Vec<f32> = out.router_logits.into_iter().flat_map(host).collect();
            cmp.close("logits_text.router_logits", &got, &want, ABS_TOL, REL_TOL);
        }
    }
    Ok(())
}
