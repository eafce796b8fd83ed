//! The deployment commands: `scoria api`, `scoria scheduler`, `scoria volume`
//! and `scoria db upgrade`, each a separate process sharing one database and
//! one RabbitMQ broker, configured by an INI file (cinder.conf option names).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use scoria_api::{AuthStrategy, KeystoneConfig};
use scoria_bus::Bus;
use scoria_db::Db;
use scoria_glance::{Glance, GlanceConfig, GlanceOptions, ServiceUserOptions};
use scoria_volume_manager::nova::{CredentialOptions, NovaClient, NovaConfig};
use tokio::sync::watch;

use crate::config::model::AuthStrategyName;
use crate::config::{Config, Sources};
use crate::services::{self, Site, Task};

/// Everything a deployment process reads from its configuration.
pub struct Deployment {
    pub config: Config,
    pub site: Site,
}

impl Deployment {
    /// Loads the configuration files and the `SCORIA_*` overrides.
    pub fn load(sources: &Sources) -> anyhow::Result<Self> {
        let config = Config::load(sources)?;
        let mut site = Site::configured(&config);
        site.nova = nova(&config)?;
        site.glance = glance(&config)?;
        Ok(Deployment { config, site })
    }

    /// Connects to the database named by `[database] connection`.
    pub async fn db(&self) -> anyhow::Result<Db> {
        Ok(Db::connect(&self.config.database_url()?).await?)
    }

    /// Connects to the broker named by `[DEFAULT] transport_url`.
    pub async fn bus(&self) -> anyhow::Result<Bus> {
        let url = self
            .config
            .default
            .transport_url
            .as_deref()
            .ok_or_else(|| {
                anyhow!(
                "[DEFAULT] transport_url is not set (e.g. rabbit://guest:guest@127.0.0.1:5672/)"
            )
            })?;
        Ok(Bus::amqp(&amqp_url(url)?).await?)
    }
}

/// The Nova client of `[nova]`, if Nova is configured there (`endpoint_override`
/// or `auth_url`). Without `[nova]` credentials, a Keystone deployment's own
/// service credentials (`[keystone_authtoken]`) get the token, when given.
pub fn nova(config: &Config) -> anyhow::Result<Option<Arc<NovaClient>>> {
    let credentials = |section| config.section::<CredentialOptions>(section);
    let Some(mut cfg) = NovaConfig::from_section(&config.section("nova")?, &credentials("nova")?)
        .map_err(|e| anyhow!(e))?
    else {
        return Ok(None);
    };
    if cfg.auth.is_none() && config.default.auth_strategy == AuthStrategyName::Keystone {
        cfg.auth = credentials("keystone_authtoken")?
            .credentials("keystone_authtoken")
            .map_err(|e| anyhow!(e))?;
    }
    tracing::debug!(nova = ?cfg, "Nova is told when attached volumes grow");
    Ok(Some(Arc::new(
        NovaClient::new(cfg).map_err(|e| anyhow!(e))?,
    )))
}

/// The Glance client of `[DEFAULT] glance_*` and `[service_user]`. Without
/// `[service_user]` credentials, a Keystone deployment's own service
/// credentials (`[keystone_authtoken]`) find Glance in the catalog and sign
/// Scoria's own requests.
pub fn glance(config: &Config) -> anyhow::Result<Arc<Glance>> {
    let credentials = |section| config.section::<CredentialOptions>(section);
    let mut user = credentials("service_user")?
        .credentials("service_user")
        .map_err(|e| anyhow!(e))?;
    if user.is_none() && config.default.auth_strategy == AuthStrategyName::Keystone {
        user = credentials("keystone_authtoken")?
            .credentials("keystone_authtoken")
            .map_err(|e| anyhow!(e))?;
    }
    let cfg = GlanceConfig::from_options(
        &config.section::<GlanceOptions>("DEFAULT")?,
        &config.section::<ServiceUserOptions>("service_user")?,
        user,
    )
    .map_err(|e| anyhow!(e))?;
    tracing::debug!(glance = ?cfg, "image service");
    Glance::new(cfg).map_err(|e| anyhow!(e))
}

/// Turns oslo.messaging's `rabbit://user:pass@host:port/vhost` into an AMQP URI.
pub fn amqp_url(transport_url: &str) -> anyhow::Result<String> {
    let rest = transport_url
        .strip_prefix("rabbit://")
        .or_else(|| transport_url.strip_prefix("amqp://"))
        .ok_or_else(|| {
            anyhow!("transport_url '{transport_url}' must start with rabbit:// or amqp://")
        })?;
    // oslo.messaging allows several hosts separated by commas; one is enough here.
    let rest = rest.split(',').next().unwrap_or(rest);
    let (authority, vhost) = rest.split_once('/').unwrap_or((rest, ""));
    let vhost = if vhost.is_empty() || vhost == "/" {
        "%2f"
    } else {
        vhost
    };
    Ok(format!("amqp://{authority}/{vhost}"))
}

/// Runs service tasks until SIGTERM, then lets their in-flight work finish.
async fn until_stopped(stop: watch::Sender<bool>, tasks: Vec<Task>) -> anyhow::Result<()> {
    services::stop_signal().await;
    tracing::info!("stopping: finishing in-flight work");
    let _ = stop.send(true);
    services::join_all(tasks).await
}

/// `scoria db upgrade`.
pub async fn db_upgrade(dep: &Deployment) -> anyhow::Result<()> {
    let db = dep.db().await?;
    db.migrate().await?;
    db.ensure_default_type().await?;
    tracing::info!("database is up to date");
    Ok(())
}

/// `scoria scheduler`.
pub async fn scheduler(dep: &Deployment) -> anyhow::Result<()> {
    let (db, bus) = (dep.db().await?, dep.bus().await?);
    let (stop, stopped) = watch::channel(false);
    let task = services::spawn_scheduler(&db, &bus, &dep.site, stopped);
    until_stopped(stop, vec![task]).await
}

/// `scoria volume`: one volume service per enabled backend (or only `only`).
pub async fn volume(dep: &Deployment, only: Option<&str>) -> anyhow::Result<()> {
    let mut backends = dep.config.backends()?;
    if let Some(name) = only {
        backends.retain(|b| b.name == name);
        if backends.is_empty() {
            bail!("backend '{name}' is not in [DEFAULT] enabled_backends");
        }
    }
    if backends.is_empty() {
        bail!("[DEFAULT] enabled_backends names no backend");
    }
    let (db, bus) = (dep.db().await?, dep.bus().await?);
    let (stop, stopped) = watch::channel(false);
    let tasks = services::spawn_volumes(&db, &bus, &dep.site, &backends, &stopped)?;
    until_stopped(stop, tasks).await
}

/// The authentication the api uses, from `[DEFAULT] auth_strategy`.
fn auth(dep: &Deployment) -> anyhow::Result<AuthStrategy> {
    match dep.config.default.auth_strategy {
        AuthStrategyName::Noauth => Ok(AuthStrategy::NoAuth),
        AuthStrategyName::Keystone => {
            let section = "keystone_authtoken";
            let cfg = KeystoneConfig::from_section(
                &dep.config.section(section)?,
                &dep.config.section(section)?,
            )
            .map_err(|e| anyhow!(e))?;
            AuthStrategy::keystone(cfg).map_err(|e| anyhow!(e))
        }
    }
}

/// `scoria api`.
pub async fn api(dep: &Deployment) -> anyhow::Result<()> {
    let (db, bus) = (dep.db().await?, dep.bus().await?);
    let d = &dep.config.default;
    let listen = SocketAddr::new(d.osapi_volume_listen, d.osapi_volume_listen_port);
    let state = services::api_state(&db, &bus, &dep.site, auth(dep)?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(%listen, "scoria api ready");
    axum::serve(listener, scoria_api::router(state))
        .with_graceful_shutdown(services::stop_signal())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::amqp_url;

    #[test]
    fn transport_urls() {
        assert_eq!(
            amqp_url("rabbit://guest:guest@127.0.0.1:5672/").unwrap(),
            "amqp://guest:guest@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            amqp_url("rabbit://u:p@h:5672/prod").unwrap(),
            "amqp://u:p@h:5672/prod"
        );
        assert_eq!(
            amqp_url("rabbit://u:p@h1:5672,u:p@h2:5672/").unwrap(),
            "amqp://u:p@h1:5672/%2f"
        );
        assert!(amqp_url("kafka://h").is_err());
    }
}
