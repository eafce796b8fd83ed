//! How Scoria finds and talks to Glance: cinder.conf's `[DEFAULT] glance_*`
//! options and `[service_user]`.

use std::time::Duration;

use scoria_core::config::{OptionDoc, Options};
use scoria_keystone::Credentials;
use serde::Deserialize;

/// The `[DEFAULT]` options about Glance, as written.
#[derive(Debug, Clone, Deserialize)]
pub struct GlanceOptions {
    #[serde(default)]
    pub glance_api_servers: Vec<String>,
    pub glance_catalog_info: String,
    pub glance_num_retries: u32,
    pub glance_request_timeout: Option<u64>,
    pub glance_api_insecure: bool,
    pub glance_ca_certificates_file: Option<String>,
    #[serde(default)]
    pub glance_core_properties: Vec<String>,
    #[serde(default)]
    pub allowed_direct_url_schemes: Vec<String>,
}

impl Options for GlanceOptions {
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::same_as_cinder(
            "glance_api_servers",
            "",
            "Comma-separated Glance URLs (`http://glance:9292`), tried in turn; from the catalog when unset.",
        ),
        OptionDoc::same_as_cinder(
            "glance_catalog_info",
            "image:glance:publicURL",
            "`service_type:service_name:interface` of Glance in the catalog.",
        ),
        OptionDoc::same_as_cinder(
            "glance_num_retries",
            "3",
            "Retries of a Glance request that got no answer or a 503.",
        ),
        OptionDoc::same_as_cinder(
            "glance_request_timeout",
            "",
            "Seconds Glance may stay silent during one request; no limit when unset.",
        ),
        OptionDoc::same_as_cinder(
            "glance_api_insecure",
            "false",
            "Accept any TLS certificate from Glance.",
        ),
        OptionDoc::same_as_cinder(
            "glance_ca_certificates_file",
            "",
            "PEM file of the CAs that sign Glance's certificate.",
        ),
        OptionDoc::same_as_cinder(
            "glance_core_properties",
            "checksum,container_format,disk_format,image_name,image_id,min_disk,min_ram,name,size",
            "Image metadata keys not copied as properties into images uploaded from volumes.",
        ),
        OptionDoc::same_as_cinder(
            "allowed_direct_url_schemes",
            "",
            "Image location schemes a volume may be made from directly (`cinder`: clone the image volume).",
        ),
    ];
}

/// The `[service_user]` switch (its credentials are `CredentialOptions`).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceUserOptions {
    pub send_service_user_token: bool,
}

impl Options for ServiceUserOptions {
    const OPTIONS: &'static [OptionDoc] = &[OptionDoc::same_as_cinder(
        "send_service_user_token",
        "false",
        "Send a service token with the user's token to Glance, so that a user token that expires during a long copy is still accepted.",
    )];
}

/// Where Glance is and how to call it.
#[derive(Debug, Clone)]
pub struct GlanceConfig {
    /// Fixed Glance URLs (no `/v2`), tried in turn; empty: from the catalog.
    pub servers: Vec<String>,
    /// The catalog's service type (`image`).
    pub service_type: String,
    /// The catalog interface (`public`, `internal`, `admin`).
    pub interface: String,
    pub retries: u32,
    /// How long Glance may stay silent; `None`: no limit.
    pub timeout: Option<Duration>,
    pub insecure: bool,
    pub ca_file: Option<String>,
    /// Volume image metadata keys not made image properties on upload.
    pub core_properties: Vec<String>,
    /// Location schemes a volume may be made from directly.
    pub direct_url_schemes: Vec<String>,
    /// Scoria's own Keystone user: the catalog, the service token, and the
    /// token of work no user asked for (the image-volume cache).
    pub service_user: Option<Credentials>,
    /// Send the service user's token as `X-Service-Token`.
    pub send_service_token: bool,
}

impl GlanceConfig {
    /// The configuration of `[DEFAULT]` and `[service_user]`.
    pub fn from_options(
        options: &GlanceOptions,
        service: &ServiceUserOptions,
        service_user: Option<Credentials>,
    ) -> Result<Self, String> {
        for s in &options.glance_api_servers {
            if !(s.starts_with("http://") || s.starts_with("https://")) {
                return Err(format!(
                    "[DEFAULT] glance_api_servers: {s} is not an http(s) URL"
                ));
            }
        }
        let parts: Vec<&str> = options.glance_catalog_info.split(':').collect();
        let [service_type, _name, interface] = parts[..] else {
            return Err(format!(
                "[DEFAULT] glance_catalog_info = {} is not service_type:service_name:interface",
                options.glance_catalog_info
            ));
        };
        let interface = interface.strip_suffix("URL").unwrap_or(interface);
        if service.send_service_user_token && service_user.is_none() {
            return Err(
                "[service_user] send_service_user_token is set but [service_user] auth_url is not"
                    .into(),
            );
        }
        Ok(GlanceConfig {
            servers: options
                .glance_api_servers
                .iter()
                .map(|s| s.trim_end_matches('/').to_string())
                .collect(),
            service_type: service_type.to_string(),
            interface: interface.to_string(),
            retries: options.glance_num_retries,
            timeout: options
                .glance_request_timeout
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            insecure: options.glance_api_insecure,
            ca_file: options.glance_ca_certificates_file.clone(),
            core_properties: options.glance_core_properties.clone(),
            direct_url_schemes: options.allowed_direct_url_schemes.clone(),
            service_user,
            send_service_token: service.send_service_user_token,
        })
    }

    /// Whether any Glance is configured (servers, or a catalog to find one in).
    pub fn is_configured(&self) -> bool {
        !self.servers.is_empty() || self.service_user.is_some()
    }
}
