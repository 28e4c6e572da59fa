//! `factored-rl encode`: embeddings of texts from an OLMoE checkpoint folder.

use std::path::PathBuf;

use factored_rl::backend::default_device;
use factored_rl::olmoe::OlmoeEncoder;

/// Encode texts with an OLMoE checkpoint: mean of the last hidden state over each text's tokens.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hugging Face checkpoint folder (config.json, tokenizer.json, model.safetensors or shards).
    #[arg(long)]
    model: PathBuf,
    /// Truncate each text to this many tokens (default: the model's max_position_embeddings).
    #[arg(long)]
    max_length: Option<usize>,
    /// Print exactly one JSON object:
    /// {"hidden_size": H, "results": [{"text", "token_ids", "embedding"}]}.
    #[arg(long)]
    json: bool,
    /// The texts to encode (put `--` before texts that start with `-`).
    #[arg(required = true)]
    texts: Vec<String>,
}

/// The `--json` document. Embeddings serialize as f32 (shortest decimal that reads back to the
/// same f32).
#[derive(serde::Serialize)]
struct JsonOutput<'a> {
    hidden_size: usize,
    results: Vec<JsonResult<'a>>,
}

#[derive(serde::Serialize)]
struct JsonResult<'a> {
    text: &'a str,
    token_ids: Vec<u32>,
    embedding: Vec<f32>,
}

/// Loads the checkpoint and prints one embedding per text.
pub fn run(args: Args) -> factored_rl::Result<()> {
    let mut encoder = OlmoeEncoder::load(&args.model, &default_device())?;
    if let Some(max_length) = args.max_length {
        encoder = encoder.with_max_length(max_length)?;
    }
    let mut results = Vec::with_capacity(args.texts.len());
    for text in &args.texts {
        let token_ids = encoder.token_ids(text)?;
        let embedding = encoder.embed(text)?;
        results.push((text, token_ids, embedding));
    }
    if args.json {
        let output = JsonOutput {
            hidden_size: encoder.hidden_size(),
            results: results
                .into_iter()
                .map(|(text, token_ids, embedding)| JsonResult {
                    text,
                    token_ids,
                    embedding,
                })
                .collect(),
        };
        let line = serde_json::to_string(&output)
            .map_err(|e| factored_rl::Error::invalid("json output", e.to_string()))?;
        println!("{line}");
    } else {
        println!(
            "{}: hidden_size {}, max_length {}",
            args.model.display(),
            encoder.hidden_size(),
            encoder.max_length()
        );
        for (text, token_ids, embedding) in results {
            let norm = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
            let head: Vec<String> = embedding
                .iter()
                .take(4)
                .map(|v| format!("{v:.4}"))
                .collect();
            println!(
                "{text:?}: {} tokens, |embedding| {norm:.4}, embedding [{}, …]",
                token_ids.len(),
                head.join(", ")
            );
        }
    }
    Ok(())
}
