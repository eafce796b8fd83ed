//! `scoria`: the one binary of the Scoria block storage service.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "scoria",
    version,
    about = "A Cinder v3-compatible block storage service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: SQLite, in-process bus, one `file` backend, noauth.
    Serve {
        /// Where the database and the volumes live.
        #[arg(long, env = "SCORIA_DATA_DIR", default_value = ".scoria-data")]
        data_dir: PathBuf,
        /// Address the Cinder v3 API listens on.
        #[arg(long, env = "SCORIA_LISTEN", default_value = "127.0.0.1:8776")]
        listen: SocketAddr,
        /// Seconds between backend stats reports.
        #[arg(long, env = "SCORIA_STATS_INTERVAL", default_value_t = 10)]
        stats_interval: u64,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCORIA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    match Cli::parse().command {
        Command::Serve {
            data_dir,
            listen,
            stats_interval,
        } => {
            scoria::serve::run(scoria::serve::ServeOptions {
                data_dir,
                listen,
                stats_interval,
            })
            .await
        }
    }
}
