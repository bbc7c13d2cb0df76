//! End-to-end tests of `tarjama translate` (being written).
