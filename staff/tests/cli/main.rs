//! The staff CLI's tests, as one binary: argument parsing and the calls they make, rendering, and
//! end to end against a local server that checks the SigV4 signature.

mod commands;
mod end_to_end;
mod render;
