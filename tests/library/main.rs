//! Tests of the library alone (no `lode` process): mutation fuzzing of every decoder of
//! network and user input, and the byte vectors of the signed formats.

mod fuzz;
mod vectors;
