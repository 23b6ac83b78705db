//! The static execution plan: dispatch order, tensor lifetimes and arena offsets. (In progress.)
