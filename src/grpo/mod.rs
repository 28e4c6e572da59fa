//! Group Relative Policy Optimization (Shao et al., "DeepSeekMath", 2024) for memory-operation
//! policies, with TRL's advantage scalings and loss aggregations.
