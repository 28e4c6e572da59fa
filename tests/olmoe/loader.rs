//! Every loader error names the key/field and the file; BF16, F16, sharded and transformers-4
//! checkpoints built from tiny_a load and agree with the F32 original.

use factored_rl::Error;
use factored_rl::backend::default_device;
use factored_rl::olmoe::{CheckpointFolder, OlmoeEncoder};
use safetensors::Dtype;

use super::support::*;

fn load(dir: &std::path::Path) -> factored_rl::Result<OlmoeEncoder> {
    OlmoeEncoder::load(dir, &default_device())
}

fn embeddings(encoder: &OlmoeEncoder) -> Vec<Vec<f32>> {
    TEXTS.iter().map(|t| encoder.embed(t).unwrap()).collect()
}

#[test]
fn missing_key_names_key_and_file() {
    let key = "model.layers.1.mlp.experts.5.up_proj.weight";
    let dir = folder_with(|t| {
        t.remove(key);
    });
    let err = load(dir.path()).unwrap_err();
    let file = dir.path().join("model.safetensors");
    assert!(
        matches!(&err, Error::MissingTensor { key: k, file: f } if k == key && *f == file),
        "{err}"
    );
}

#[test]
fn wrong_shape_names_key_and_file() {
    let key = "model.layers.0.self_attn.k_proj.weight";
    let dir = folder_with(|t| {
        t.insert(
            key.to_string(),
            RawTensor::f32(vec![32, 64], &[0.5; 32 * 64]),
        );
    });
    let err = load(dir.path()).unwrap_err();
    match &err {
        Error::ShapeMismatch {
            name,
            expected,
            found,
        } => {
            assert!(
                name.contains(key) && name.contains("model.safetensors"),
                "{err}"
            );
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[64, 64][..], &[32, 64][..])
            );
        }
        other => panic!("expected ShapeMismatch, got {other}"),
    }
}

#[test]
fn wrong_dtype_names_key_dtype_and_file() {
    let key = "model.norm.weight";
    let dir = folder_with(|t| {
        let original = t[key].clone();
        t.insert(
            key.to_string(),
            RawTensor {
                dtype: Dtype::I32,
                ..original
            },
        );
    });
    let err = load(dir.path()).unwrap_err();
    let file = dir.path().join("model.safetensors");
    assert!(
        matches!(&err, Error::UnsupportedDtype { key: k, dtype, file: f }
            if k == key && dtype == "I32" && *f == file),
        "{err}"
    );
}

#[test]
fn truncated_file_is_corrupt_and_named() {
    let dir = folder_with(|_| {});
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { file, .. } if *file == path),
        "{err}"
    );
    // A header cut short is corrupt too.
    std::fs::write(&path, &bytes[..20]).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { file, .. } if *file == path),
        "{err}"
    );
}

#[test]
fn shard_listed_in_the_index_but_absent_is_named() {
    let dir = folder_without_weights();
    let tensors = read_tensors(&tiny_a().join("model.safetensors"));
    let shards = write_sharded(dir.path(), &tensors, 3);
    std::fs::remove_file(&shards[1]).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, source } if *path == shards[1]
            && source.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    assert!(
        err.to_string().contains("model.safetensors.index.json"),
        "{err}"
    );
}

#[test]
fn key_missing_from_the_index_names_the_index() {
    let dir = folder_without_weights();
    let mut tensors = read_tensors(&tiny_a().join("model.safetensors"));
    tensors.remove("model.layers.0.mlp.gate.weight");
    write_sharded(dir.path(), &tensors, 2);
    let err = load(dir.path()).unwrap_err();
    let index = dir.path().join("model.safetensors.index.json");
    assert!(
        matches!(&err, Error::MissingTensor { key, file }
            if key == "model.layers.0.mlp.gate.weight" && *file == index),
        "{err}"
    );
}

#[test]
fn index_pointing_outside_the_folder_is_rejected() {
    let dir = folder_without_weights();
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"weight_map": {"model.norm.weight": "../elsewhere.safetensors"}}"#,
    )
    .unwrap();
    let err = CheckpointFolder::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { file, .. } if *file == index),
        "{err}"
    );
}

#[test]
fn unknown_rope_type_names_field_and_file() {
    let dir = folder_with(|_| {});
    edit_config(dir.path(), |c| {
        c["rope_parameters"]["rope_type"] = "yarn".into();
    });
    let err = load(dir.path()).unwrap_err();
    let file = dir.path().join("config.json");
    assert!(
        matches!(&err, Error::InvalidConfig { file: f, field, .. }
            if *f == file && field == "rope_parameters.rope_type"),
        "{err}"
    );
}

#[test]
fn missing_folder_weights_and_tokenizer_are_named() {
    let missing = std::env::temp_dir().join("factored-rl-no-such-checkpoint");
    assert!(matches!(load(&missing), Err(Error::Io { path, .. }) if path == missing));

    let dir = folder_without_weights();
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == dir.path().join("model.safetensors")),
        "{err}"
    );

    let dir = folder_with(|_| {});
    std::fs::write(dir.path().join("tokenizer.json"), "{not json").unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { file, .. } if *file == dir.path().join("tokenizer.json")),
        "{err}"
    );
}

#[test]
fn bf16_and_f16_checkpoints_match_f32_within_their_rounding() {
    let reference = embeddings(&load(&tiny_a()).unwrap());

    // Widening is exact: a BF16 file gives bit for bit what an F32 file of the same
    // bf16-rounded values gives.
    let bf16 = folder_with(|t| t.values_mut().for_each(|v| *v = v.to_bf16()));
    let rounded = folder_with(|t| t.values_mut().for_each(|v| *v = v.bf16_rounded()));
    let from_bf16 = embeddings(&load(bf16.path()).unwrap());
    assert_eq!(from_bf16, embeddings(&load(rounded.path()).unwrap()));

    // Against the F32 original the only difference is the weights' rounding (relative 2⁻⁹ for
    // bf16, 2⁻¹² for f16) carried through two layers: a few 1e-2 at most on unit-scale
    // outputs, far below the O(1) of a wrong mapping.
    let f16 = folder_with(|t| t.values_mut().for_each(|v| *v = v.to_f16()));
    let from_f16 = embeddings(&load(f16.path()).unwrap());
    for ((want, bf), f) in reference.iter().zip(&from_bf16).zip(&from_f16) {
        let d_bf16 = max_abs_diff(want, bf);
        let d_f16 = max_abs_diff(want, f);
        assert!(d_bf16 > 0.0 && d_bf16 < 5e-2, "bf16 max |diff| {d_bf16}");
        assert!(
            d_f16 < 1e-2 && d_f16 <= d_bf16,
            "f16 max |diff| {d_f16} (bf16 {d_bf16})"
        );
    }
}

#[test]
fn sharded_checkpoint_matches_the_single_file_exactly() {
    let reference = embeddings(&load(&tiny_a()).unwrap());
    let dir = folder_without_weights();
    let tensors = read_tensors(&tiny_a().join("model.safetensors"));
    write_sharded(dir.path(), &tensors, 3);
    let folder = CheckpointFolder::open(dir.path()).unwrap();
    assert!(matches!(
        folder.weight_files(),
        factored_rl::olmoe::loader::WeightFiles::Sharded { .. }
    ));
    assert_eq!(embeddings(&load(dir.path()).unwrap()), reference);

    // Shards in BF16 as real checkpoints ship them.
    let dir = folder_without_weights();
    let bf16: Tensors = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.to_bf16()))
        .collect();
    write_sharded(dir.path(), &bf16, 2);
    let rounded = folder_with(|t| t.values_mut().for_each(|v| *v = v.bf16_rounded()));
    assert_eq!(
        embeddings(&load(dir.path()).unwrap()),
        embeddings(&load(rounded.path()).unwrap())
    );
}

#[test]
fn transformers_4_config_loads_the_same_model() {
    let reference = embeddings(&load(&tiny_a()).unwrap());
    let dir = folder_with(|_| {});
    edit_config(dir.path(), |c| {
        let theta = c["rope_parameters"]["rope_theta"].clone();
        c.remove("rope_parameters");
        c.insert("rope_theta".into(), theta);
        c.insert("rope_scaling".into(), serde_json::Value::Null);
        c.remove("dtype");
        c.insert("torch_dtype".into(), "float32".into());
    });
    assert_eq!(embeddings(&load(dir.path()).unwrap()), reference);
}
