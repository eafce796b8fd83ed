//! `scoria`: the one binary of the Scoria block storage service.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use scoria::config::Sources;

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
    /// Run the Cinder v3 API (deployment mode).
    Api(ConfigArgs),
    /// Run a scheduler (deployment mode).
    Scheduler(ConfigArgs),
    /// Run the volume services of the enabled backends (deployment mode).
    Volume {
        #[command(flatten)]
        config: ConfigArgs,
        /// Run only this backend of `enabled_backends`.
        #[arg(long)]
        backend: Option<String>,
    },
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// The configuration file's options.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Run everything in one process: SQLite, in-process bus, one `file` backend
    /// (or the config file's `enabled_backends`), noauth.
    Serve {
        /// Where the database and the volumes live.
        #[arg(long, env = "SCORIA_DATA_DIR", default_value = ".scoria-data")]
        data_dir: PathBuf,
        /// Address the Cinder v3 API listens on.
        #[arg(long, env = "SCORIA_LISTEN", default_value = "127.0.0.1:8776")]
        listen: SocketAddr,
        /// Seconds between backend stats reports [default: the config file's
        /// backend_stats_polling_interval, else 10].
        #[arg(long, env = "SCORIA_STATS_INTERVAL")]
        stats_interval: Option<u64>,
        /// INI file (cinder.conf option names): `enabled_backends` and their
        /// sections, `[nova]`, `[DEFAULT]` timings; `SCORIA_<SECTION>__<OPTION>`
        /// variables override it.
        #[arg(long, env = "SCORIA_CONFIG_FILE")]
        config_file: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// INI file with cinder.conf option names; repeat it to read several, a
    /// later one overriding an earlier one. `SCORIA_<SECTION>__<OPTION>`
    /// variables override every file.
    #[arg(long, env = "SCORIA_CONFIG_FILE")]
    config_file: Vec<PathBuf>,
    /// A directory whose `*.conf` files are read after the `--config-file`s,
    /// in the order of their names.
    #[arg(long, env = "SCORIA_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn sources(self) -> Sources {
        Sources {
            files: self.config_file,
            dir: self.config_dir,
        }
    }
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print every option with its default, its cinder.conf name and its
    /// meaning (Markdown; docs/configuration.md).
    Reference,
}

#[derive(Subcommand)]
enum DbAction {
    /// Apply the migrations that have not run yet.
    Upgrade(ConfigArgs),
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
    use scoria::deploy::{self, Deployment};
    let load = |c: ConfigArgs| Deployment::load(&c.sources());
    match Cli::parse().command {
        Command::Api(c) => deploy::api(&load(c)?).await,
        Command::Scheduler(c) => deploy::scheduler(&load(c)?).await,
        Command::Volume { config, backend } => {
            deploy::volume(&load(config)?, backend.as_deref()).await
        }
        Command::Db {
            action: DbAction::Upgrade(c),
        } => deploy::db_upgrade(&load(c)?).await,
        Command::Config {
            action: ConfigAction::Reference,
        } => {
            print!("{}", scoria::config::reference::markdown());
            Ok(())
        }
        Command::Serve {
            data_dir,
            listen,
            stats_interval,
            config_file,
        } => {
            scoria::serve::run(scoria::serve::ServeOptions {
                data_dir,
                listen,
                stats_interval,
                config_file,
            })
            .await
        }
    }
}
