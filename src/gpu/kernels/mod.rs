//! Kernel wrappers. (In progress.)
