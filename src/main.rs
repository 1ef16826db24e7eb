//! The `tlsdiag` binary: flags, logging, certificate, then the server until Ctrl-C
//! or SIGTERM.

use anyhow::Result;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use tlsdiag::config::Args;
use tlsdiag::server::Server;

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Colour only for a person at a terminal, never in files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let config = Args::parse().into_config()?;
    let server = Server::bind(config).await?;
    tracing::info!(
        https = %format!("https://{}/", server.https_addr()),
        http = %format!("http://{}/", server.http_addr()),
        probe = %server.probe_addr().map_or_else(|| "off".to_owned(), |a| format!("http://{a}/")),
        metrics = %server.metrics_addr().map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics")),
        cert = %server.cert_path().display(),
        "tlsdiag listening"
    );
    server.run(shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
