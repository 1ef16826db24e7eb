//! The `tlsdiag` binary: flags, logging, certificate, then the server until Ctrl-C
//! or SIGTERM, after which requests in flight get `--shutdown-grace` to finish.

use anyhow::Result;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use tlsdiag::config::{Args, LogFormat};
use tlsdiag::server::Server;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let config = args.into_config()?;
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
    tracing::info!("tlsdiag stopped");
    // Connections still open after the grace end here, with the process.
    std::process::exit(0);
}

/// Logs to stdout: text (colour only for a person at a terminal), or one
/// JSON object per line for a log collector (`--log-format json`).
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
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
