//! What a network is: its architecture ([`arch`]) and parameters ([`params`]), loaded from a
//! checkpoint in any flavour or format ([`load`], flavours in [`flavour`]) or made up for benchmarks ([`random`]).

pub mod arch;
pub mod flavour;
pub mod load;
pub mod params;
pub mod random;
pub mod rules;

pub use arch::{Arch, Flavour};
pub use params::Params;

/// An architecture with its parameters.
#[derive(Clone, Debug)]
pub struct Network {
    /// The architecture.
    pub arch: Arch,
    /// Its parameters.
    pub params: Params,
}
