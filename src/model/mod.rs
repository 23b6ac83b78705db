//! What a network is: its architecture ([`arch`]) and parameters ([`params`]), loaded from a
//! checkpoint in any of the five flavours ([`load`]) or made up for benchmarks ([`random`]).

pub mod arch;
pub mod load;
pub mod params;
pub mod random;

pub use arch::{Arch, Flavour};
pub use params::Params;

/// An architecture with its parameters.
#[derive(Clone, Debug)]
pub struct Network {
    pub arch: Arch,
    pub params: Params,
}
