//! Seeded random parameters for an architecture (benchmarks, planner tests). (In progress.)
