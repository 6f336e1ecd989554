//! Sakila: a Kubernetes operator for replicated, self-healing MySQL.

pub mod agent;
pub mod api;
pub mod backup;
pub mod clustering;
pub mod controller;
pub mod exporter;
pub mod http;
pub mod kube_config;
pub mod leader_election;
pub mod lost_nodes;
pub mod metrics;
pub mod mysql;
pub mod objectstore;
pub mod plugin;
pub mod resources;
pub mod storage;
pub mod telemetry;
pub mod validate;
