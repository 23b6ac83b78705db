//! Naive CPU reference implementations of every op and of the whole lowered graph. (In progress.)
