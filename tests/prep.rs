//! End-to-end tests of `tarjama prep`.
