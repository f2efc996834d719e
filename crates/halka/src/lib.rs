//! halka, the product: the `halka` command's subcommands as library functions, so the binary
//! stays thin and tests call the same code.

pub mod bench;
pub mod cli;
pub mod demo;
pub mod sim;
