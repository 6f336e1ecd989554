//! kube-runtime glue: the reconcile pipeline, its context, error policy and events.

pub mod validate;
