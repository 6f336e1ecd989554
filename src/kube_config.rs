//! The Kubernetes client's configuration, as every program of Sakila builds it.

use hyper::header::{HeaderName, HeaderValue, USER_AGENT};
use kube::Config;
use kube::config::InferConfigError;

/// The kubeconfig (KUBECONFIG, ~/.kube/config) or the pod's service account, as kubectl finds
/// them, with a User-Agent naming the program and its version, which the API server's audit log
/// records with every request.
pub async fn infer(program: &str) -> Result<Config, InferConfigError> {
    let mut config = Config::infer().await?;
    config.headers.push(user_agent(program));
    Ok(config)
}

fn user_agent(program: &str) -> (HeaderName, HeaderValue) {
    let value = format!("{program}/{}", env!("CARGO_PKG_VERSION"));
    // A program name is one of this crate's constants: always a valid header value.
    let value = HeaderValue::from_str(&value).expect("a valid User-Agent");
    (USER_AGENT, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_the_program_and_its_version() {
        let (name, value) = user_agent("sakila-operator");
        assert_eq!(name, USER_AGENT);
        assert_eq!(
            value.to_str().unwrap(),
            format!("sakila-operator/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
