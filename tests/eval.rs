//! End-to-end tests of `tarjama eval`.
