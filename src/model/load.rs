//! Loading safetensors checkpoints in each flavour's own names and layouts. (In progress.)
