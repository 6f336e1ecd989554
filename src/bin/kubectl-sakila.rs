//! `kubectl sakila ...`: copy this binary onto PATH and kubectl finds it (`src/plugin`).

use std::process::ExitCode;

use kube::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let invocation = match sakila::plugin::args::parse(std::env::args().skip(1)) {
        Ok(invocation) => invocation,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // The kubeconfig (KUBECONFIG, ~/.kube/config) or the pod's service account, as kubectl.
    let config = match sakila::kube_config::infer("kubectl-sakila").await {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: no Kubernetes configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let namespace = invocation
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = match Client::try_from(config) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: cannot build a Kubernetes client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    match sakila::plugin::run(&invocation, client, &namespace, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
