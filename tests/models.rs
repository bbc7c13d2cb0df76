//! End-to-end tests of `tarjama models`.
