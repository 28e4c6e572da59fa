//! OLMoE encoder adapter (Muennighoff et al., "OLMoE: Open Mixture-of-Experts Language Models",
//! 2024): loads a Hugging Face checkpoint folder from disk and supplies state embeddings to a
//! memory-operation action head.
