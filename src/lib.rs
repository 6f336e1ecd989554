//! Sakila: a Kubernetes operator for replicated, self-healing MySQL.

pub mod api;
pub mod controller;
pub mod resources;
