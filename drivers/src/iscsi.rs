//! iSCSI export of any local file or block device through the userspace
//! target `tgt`, for every driver that can give a volume's local path.
//!
//! A backend section enables it with `target_helper = tgtadm` (the driver
//! reads that option and calls [`TgtTarget::new`]); the other options keep
//! cinder.conf's names:
//! - `target_ip_address` (default `127.0.0.1`) and `target_port` (default
//!   `3260`): the portal hosts are told to log in to;
//! - `target_prefix` (default `iqn.2010-10.org.openstack:`): the IQN prefix;
//! - `tgtadm_path` (default `tgtadm`, looked up in `PATH`).
//!
//! Layout in tgtd:
//! - one target per volume, IQN `<target_prefix>volume-<volume id>`, LUN 1
//!   backed by the volume's path (`--bstype rdwr`), open to every initiator
//!   address: access is guarded by CHAP;
//! - one CHAP account per attachment, bound to the volume's target, so a
//!   multiattached volume has several accounts on one target. Its user name is
//!   `<auth.username>.<volume id>.<attachment id>`: tgtd accounts are global to
//!   the daemon (deleting one unbinds it from every target), so the name must be
//!   unique per attachment of a volume, and a terminate, which only knows the
//!   attachment id, finds its account by that name. tgtd itself is thus the
//!   record of which account serves which attachment; no file is kept. The
//!   password is `auth.password` (an existing account keeps the password it
//!   was made with), and the connection info returns both;
//! - the LUN is read-only when it was set up for a read-only export while the
//!   target had no other account; a read-write export makes it read-write. A
//!   read-only attachment sharing a read-write LUN relies on the host honouring
//!   `access_mode`, as in Cinder.
//!
//! A terminate that leaves other accounts on the target unbinds the accounts
//! bound after the leaving one and binds the staying ones again (tgtd reads a
//! target's account list as packed and crashes on a gap), so the staying
//! attachments cannot log in for that moment; sessions already logged in are
//! not touched.
//!
//! Exporting again with the same spec (as the volume manager does at a
//! restart) recreates whatever is missing and returns the same connection
//! info; removing what does not exist succeeds. Every change to tgtd made by
//! this process is serialised by one lock; target ids are picked free from
//! tgtd's own list and picked again when another process took the id first,
//! so several volume services may share one tgtd.
//!
//! tgtd does not notice a backing file growing, so a driver exporting through
//! this module should not declare online extend.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use scoria_core::config::BackendConfig;
use serde_json::Value;
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::{AccessMode, ConnectionInfo, DriverError, DriverResult, ExportSpec, VolumeSpec};

/// Serialises this process's changes to tgtd, across every driver instance.
static TGTADM_LOCK: Mutex<()> = Mutex::const_new(());

const DEFAULT_PREFIX: &str = "iqn.2010-10.org.openstack:";
/// The LUN holding the volume (LUN 0 is tgt's controller).
const LUN: &str = "1";
/// Target ids tried before giving up when other processes keep taking them.
const TID_ATTEMPTS: usize = 10;
const TGTADM_TIMEOUT: Duration = Duration::from_secs(30);
const PORTAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest volume or attachment id and CHAP user name accepted, so an
/// account name stays within iSCSI's 255-byte limit for CHAP_N.
const MAX_NAME_LEN: usize = 64;
const MAX_PASSWORD_LEN: usize = 128;

/// Exports local paths as iSCSI targets of a tgtd on this host.
#[derive(Debug, Clone)]
pub struct TgtTarget {
    tgtadm: PathBuf,
    portal: SocketAddr,
    prefix: String,
}

/// A target as `tgtadm --op show --mode target` lists it.
#[derive(Debug, Clone)]
struct Target {
    tid: u32,
    iqn: String,
    accounts: Vec<String>,
}

/// What tgtadm printed when it refused a request.
#[derive(Debug)]
struct Refusal {
    command: String,
    stderr: String,
}

impl Refusal {
    fn already_exists(&self) -> bool {
        self.stderr.contains("already exists")
    }

    fn not_found(&self) -> bool {
        self.stderr.contains("can't find")
    }

    fn into_error(self) -> DriverError {
        backend(format!("{} failed: {}", self.command, self.stderr))
    }
}

impl TgtTarget {
    /// The `target_helper` value that selects this module.
    pub const HELPER: &'static str = "tgtadm";
    /// The `storage_protocol` a driver exporting through it reports.
    pub const STORAGE_PROTOCOL: &'static str = "iSCSI";

    /// Reads the target options of a backend section; runs nothing.
    pub fn new(config: &BackendConfig) -> DriverResult<Self> {
        Ok(Self {
            tgtadm: option(config, "tgtadm_path").unwrap_or("tgtadm").into(),
            portal: portal(config)?,
            prefix: prefix(config)?,
        })
    }

    /// Checks that tgtadm runs, tgtd answers it, and the portal accepts connections.
    pub async fn check(&self) -> DriverResult<()> {
        self.show("sys").await.map_err(|e| {
            backend(format!(
                "tgtd is not reachable with {}: {e}; install the tgt package and start tgtd",
                self.tgtadm.display()
            ))
        })?;
        let connected =
            tokio::time::timeout(PORTAL_TIMEOUT, tokio::net::TcpStream::connect(self.portal)).await;
        match connected {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(backend(format!(
                "nothing accepts iSCSI logins on {} (target_ip_address, target_port): {e}",
                self.portal
            ))),
            Err(_) => Err(backend(format!(
                "connecting to the iSCSI portal {} timed out",
                self.portal
            ))),
        }
    }

    /// The IQN of a volume's target.
    pub fn iqn(&self, volume_id: &str) -> String {
        format!("{}volume-{volume_id}", self.prefix)
    }

    /// Exports `path` as the volume's LUN 1 for one attachment and returns
    /// os-brick's iSCSI connection info; recreates whatever is missing.
    pub async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        path: &Path,
        export: &ExportSpec,
    ) -> DriverResult<ConnectionInfo> {
        let account = account_name(volume, export)?;
        validate_password(&export.auth.password)?;
        // tgtadm hands the path to tgtd in a comma-separated list.
        let path = path.to_str().filter(|p| !p.contains(',')).ok_or_else(|| {
            DriverError::Invalid(format!(
                "path {} must be UTF-8 without ',' to be exported by tgt",
                path.display()
            ))
        })?;
        let iqn = self.iqn(&volume.id);
        let _serial = TGTADM_LOCK.lock().await;
        let target = self.ensure_target(&iqn).await?;
        let tid = target.tid.to_string();
        self.ensure_lun(
            &tid,
            path,
            lun_readonly(&target, &account, export.access_mode),
        )
        .await?;
        self.ensure(
            "bind",
            "target",
            &["--tid", &tid, "--initiator-address", "ALL"],
        )
        .await?;
        let password = export.auth.password.as_str();
        self.ensure(
            "new",
            "account",
            &["--user", &account, "--password", password],
        )
        .await?;
        self.ensure("bind", "account", &["--tid", &tid, "--user", &account])
            .await?;
        Ok(self.connection_info(&iqn, volume, &account, export))
    }

    /// Removes one attachment's account, or every account of the volume when
    /// `attachment_id` is `None`, and the target once no account is bound to it.
    pub async fn terminate_connection(
        &self,
        volume: &VolumeSpec,
        attachment_id: Option<&str>,
    ) -> DriverResult<()> {
        validate_id("volume", &volume.id)?;
        if let Some(attachment) = attachment_id {
            validate_id("attachment", attachment)?;
        }
        let leaving = |account: &str| {
            account_owner(account)
                .is_some_and(|(v, a)| v == volume.id && attachment_id.is_none_or(|id| id == a))
        };
        let iqn = self.iqn(&volume.id);
        let _serial = TGTADM_LOCK.lock().await;
        let target = self.targets().await?.into_iter().find(|t| t.iqn == iqn);
        if let Some(target) = target {
            if attachment_id.is_none() || target.accounts.iter().all(|a| leaving(a)) {
                let tid = target.tid.to_string();
                self.remove("delete", "target", &["--tid", &tid, "--force"])
                    .await?;
            } else {
                self.unbind(&target, leaving).await?;
            }
        }
        // Unbound now (or never bound, when the target went away behind our back).
        for account in self.accounts().await? {
            if leaving(&account) {
                self.remove("delete", "account", &["--user", &account])
                    .await?;
            }
        }
        Ok(())
    }

    /// Unbinds the `leaving` accounts from a target that keeps others.
    ///
    /// tgtd keeps a target's accounts in an array that it reads as packed:
    /// a gap left by unbinding (or deleting) an account in the middle makes it
    /// skip the accounts after the gap at login and crash when it lists the
    /// target. So the accounts from the first leaving one on are unbound from
    /// the end, and those staying are bound again in their order.
    async fn unbind(&self, target: &Target, leaving: impl Fn(&str) -> bool) -> DriverResult<()> {
        let Some(first) = target.accounts.iter().position(|a| leaving(a)) else {
            return Ok(());
        };
        let tid = target.tid.to_string();
        let tail = &target.accounts[first..];
        for account in tail.iter().rev() {
            self.remove("unbind", "account", &["--tid", &tid, "--user", account])
                .await?;
        }
        for account in tail.iter().filter(|a| !leaving(a)) {
            self.ensure("bind", "account", &["--tid", &tid, "--user", account])
                .await?;
        }
        Ok(())
    }

    /// The volume's target, created under a free target id if it does not exist.
    async fn ensure_target(&self, iqn: &str) -> DriverResult<Target> {
        for _ in 0..TID_ATTEMPTS {
            let targets = self.targets().await?;
            if let Some(target) = targets.iter().find(|t| t.iqn == iqn) {
                return Ok(target.clone());
            }
            let tid = free_tid(&targets);
            let created = self
                .tgtadm(
                    "new",
                    "target",
                    &["--tid", &tid.to_string(), "--targetname", iqn],
                )
                .await?;
            match created {
                Ok(_) => {
                    return Ok(Target {
                        tid,
                        iqn: iqn.to_string(),
                        accounts: Vec::new(),
                    })
                }
                // Another tgtd client took the id (or made this target) meanwhile: look again.
                Err(refusal) if refusal.already_exists() => continue,
                Err(refusal) => return Err(refusal.into_error()),
            }
        }
        Err(backend(format!(
            "no free tgt target id for {iqn} after {TID_ATTEMPTS} attempts"
        )))
    }

    /// Adds LUN 1 on `path` if missing and sets its read-only flag when asked.
    async fn ensure_lun(&self, tid: &str, path: &str, readonly: Option<bool>) -> DriverResult<()> {
        let lun = ["--tid", tid, "--lun", LUN];
        let backing = ["--backing-store", path, "--bstype", "rdwr"];
        self.ensure("new", "logicalunit", &[&lun[..], &backing[..]].concat())
            .await?;
        let Some(readonly) = readonly else {
            return Ok(());
        };
        let param = if readonly { "readonly=1" } else { "readonly=0" };
        let update = [&lun[..], &["--params", param][..]].concat();
        self.tgtadm("update", "logicalunit", &update)
            .await?
            .map(drop)
            .map_err(Refusal::into_error)
    }

    fn connection_info(
        &self,
        iqn: &str,
        volume: &VolumeSpec,
        account: &str,
        export: &ExportSpec,
    ) -> ConnectionInfo {
        let text = |s: &str| Value::String(s.to_string());
        let data = [
            ("target_discovered", Value::Bool(false)),
            ("target_portal", Value::String(self.portal.to_string())),
            ("target_iqn", text(iqn)),
            ("target_lun", Value::from(1)),
            ("volume_id", text(&volume.id)),
            ("auth_method", text("CHAP")),
            ("auth_username", text(account)),
            ("auth_password", text(&export.auth.password)),
            ("access_mode", text(export.access_mode.as_str())),
            ("encrypted", Value::Bool(false)),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
        ConnectionInfo {
            driver_volume_type: "iscsi".into(),
            data,
        }
    }

    async fn targets(&self) -> DriverResult<Vec<Target>> {
        Ok(parse_targets(&self.show("target").await?))
    }

    async fn accounts(&self) -> DriverResult<Vec<String>> {
        Ok(parse_accounts(&self.show("account").await?))
    }

    async fn show(&self, mode: &str) -> DriverResult<String> {
        self.tgtadm("show", mode, &[])
            .await?
            .map_err(Refusal::into_error)
    }

    /// Runs a creating request; "already exists" counts as done.
    async fn ensure(&self, op: &str, mode: &str, args: &[&str]) -> DriverResult<()> {
        match self.tgtadm(op, mode, args).await? {
            Err(refusal) if !refusal.already_exists() => Err(refusal.into_error()),
            _ => Ok(()),
        }
    }

    /// Runs a deleting request; "can't find" counts as done.
    async fn remove(&self, op: &str, mode: &str, args: &[&str]) -> DriverResult<()> {
        match self.tgtadm(op, mode, args).await? {
            Err(refusal) if !refusal.not_found() => Err(refusal.into_error()),
            _ => Ok(()),
        }
    }

    /// Runs `tgtadm --lld iscsi --op <op> --mode <mode> <args>`: `Err` when it
    /// cannot run, `Ok(Err)` when tgtadm refuses, `Ok(Ok(stdout))` otherwise.
    /// Messages name only the operation: arguments may hold a password.
    async fn tgtadm(
        &self,
        op: &str,
        mode: &str,
        args: &[&str],
    ) -> DriverResult<Result<String, Refusal>> {
        let command = format!("tgtadm --op {op} --mode {mode}");
        let run = Command::new(&self.tgtadm)
            .args(["--lld", "iscsi", "--op", op, "--mode", mode])
            .args(args)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(TGTADM_TIMEOUT, run)
            .await
            .map_err(|_| backend(format!("{command} did not finish in {TGTADM_TIMEOUT:?}")))?
            .map_err(|e| {
                backend(format!(
                    "cannot run {} (install the tgt package or set tgtadm_path): {e}",
                    self.tgtadm.display()
                ))
            })?;
        if output.status.success() {
            return Ok(Ok(String::from_utf8_lossy(&output.stdout).into_owned()));
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        Ok(Err(Refusal {
            command,
            stderr: format!("{stderr} ({})", output.status),
        }))
    }
}

/// The value of a backend option, if set and not blank.
fn option<'a>(config: &'a BackendConfig, key: &str) -> Option<&'a str> {
    config
        .options
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

fn invalid(config: &BackendConfig, key: &str, value: &str, want: &str) -> DriverError {
    DriverError::InvalidConfig(format!(
        "backend {}: {key} {value:?} must be {want}",
        config.name
    ))
}

/// `target_ip_address` and `target_port`.
fn portal(config: &BackendConfig) -> DriverResult<SocketAddr> {
    let ip = option(config, "target_ip_address").unwrap_or("127.0.0.1");
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| invalid(config, "target_ip_address", ip, "an IPv4 or IPv6 address"))?;
    let port = option(config, "target_port").unwrap_or("3260");
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| invalid(config, "target_port", port, "a TCP port number"))?;
    Ok(SocketAddr::new(ip, port))
}

/// `target_prefix`, which starts every IQN.
fn prefix(config: &BackendConfig) -> DriverResult<String> {
    let prefix = option(config, "target_prefix").unwrap_or(DEFAULT_PREFIX);
    let valid = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".:-".contains(&b));
    if valid {
        Ok(prefix.to_string())
    } else {
        Err(invalid(
            config,
            "target_prefix",
            prefix,
            "ASCII letters, digits, '.', ':' or '-'",
        ))
    }
}

/// Whether LUN 1 must be made read-only (`Some(true)`), read-write
/// (`Some(false)`), or left as it is, for an export through `account`.
fn lun_readonly(target: &Target, account: &str, mode: AccessMode) -> Option<bool> {
    match mode {
        AccessMode::Rw => Some(false),
        AccessMode::Ro if target.accounts.iter().all(|a| a == account) => Some(true),
        AccessMode::Ro => None,
    }
}

/// The smallest target id tgtd does not use.
fn free_tid(targets: &[Target]) -> u32 {
    (1..)
        .find(|tid| targets.iter().all(|t| t.tid != *tid))
        .unwrap_or(u32::MAX)
}

/// The tgt account of one attachment: `<username>.<volume id>.<attachment id>`.
fn account_name(volume: &VolumeSpec, export: &ExportSpec) -> DriverResult<String> {
    validate_id("volume", &volume.id)?;
    validate_id("attachment", &export.attachment_id)?;
    let username = &export.auth.username;
    let valid = (1..=MAX_NAME_LEN).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        return Err(DriverError::Invalid(format!(
            "CHAP user name {username:?} must be 1 to {MAX_NAME_LEN} ASCII letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(format!("{username}.{}.{}", volume.id, export.attachment_id))
}

/// The (volume id, attachment id) an account name made by [`account_name`] belongs to.
fn account_owner(account: &str) -> Option<(&str, &str)> {
    let mut parts = account.rsplitn(3, '.');
    let attachment = parts.next()?;
    let volume = parts.next()?;
    parts.next()?;
    Some((volume, attachment))
}

/// Ids become part of IQNs and account names: ASCII letters, digits and `-`.
fn validate_id(kind: &str, id: &str) -> DriverResult<()> {
    let valid = (1..=MAX_NAME_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!(
            "{kind} id {id:?} must be 1 to {MAX_NAME_LEN} ASCII letters, digits or '-' to be exported over iSCSI"
        )))
    }
}

/// tgtadm passes values in a comma-separated list, so a password is printable
/// ASCII without spaces or commas.
fn validate_password(password: &str) -> DriverResult<()> {
    let valid = (1..=MAX_PASSWORD_LEN).contains(&password.len())
        && password.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if valid {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!(
            "a CHAP password must be 1 to {MAX_PASSWORD_LEN} printable ASCII characters without spaces or ','"
        )))
    }
}

/// Targets, with their bound accounts, from `tgtadm --op show --mode target`.
fn parse_targets(show: &str) -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::new();
    let mut in_accounts = false;
    for line in show.lines() {
        if let Some(target) = parse_target_header(line) {
            targets.push(target);
            in_accounts = false;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent <= 4 {
            in_accounts = line.trim() == "Account information:";
        } else if in_accounts && !line.trim().is_empty() && !line.ends_with(" (outgoing)") {
            if let Some(target) = targets.last_mut() {
                target.accounts.push(line.trim().to_string());
            }
        }
    }
    targets
}

/// `Target <tid>: <iqn>`.
fn parse_target_header(line: &str) -> Option<Target> {
    let (tid, iqn) = line.strip_prefix("Target ")?.split_once(": ")?;
    Some(Target {
        tid: tid.parse().ok()?,
        iqn: iqn.trim().to_string(),
        accounts: Vec::new(),
    })
}

/// Account names from `tgtadm --op show --mode account`.
fn parse_accounts(show: &str) -> Vec<String> {
    show.lines()
        .filter(|line| line.starts_with(char::is_whitespace))
        .map(|line| line.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

fn backend(message: String) -> DriverError {
    DriverError::Backend {
        message,
        temporary: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Chap;

    const SHOW: &str = "\
Target 1: iqn.2010-10.org.openstack:volume-a
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
        LUN: 1
            Type: disk
            Backing store path: /v/volume-a
    Account information:
        u1.a.att-1
        u2.a.att-2
        mutual (outgoing)
    ACL information:
        ALL
Target 12: iqn.2010-10.org.openstack:volume-b
    System information:
    LUN information:
    Account information:
    ACL information:
        ALL
";

    fn config(options: &[(&str, &str)]) -> BackendConfig {
        BackendConfig {
            name: "b".into(),
            driver: "file".into(),
            volume_backend_name: "b".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn volume(id: &str) -> VolumeSpec {
        VolumeSpec {
            id: id.into(),
            size: 1,
            pool: None,
            provider_location: None,
            extra_specs: Default::default(),
        }
    }

    fn export(attachment_id: &str, username: &str) -> ExportSpec {
        ExportSpec {
            attachment_id: attachment_id.into(),
            connector: Default::default(),
            access_mode: AccessMode::Rw,
            auth: Chap {
                username: username.into(),
                password: "secret".into(),
            },
        }
    }

    #[test]
    fn show_output_is_parsed_into_targets_and_accounts() {
        let targets = parse_targets(SHOW);
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].tid, 1);
        assert_eq!(targets[0].iqn, "iqn.2010-10.org.openstack:volume-a");
        assert_eq!(targets[0].accounts, ["u1.a.att-1", "u2.a.att-2"]);
        assert_eq!(targets[1].tid, 12);
        assert!(targets[1].accounts.is_empty());
        assert_eq!(free_tid(&targets), 2);
        assert_eq!(free_tid(&[]), 1);
        assert_eq!(
            parse_accounts("Account list:\n    u1\n    probe\n"),
            ["u1", "probe"]
        );
    }

    #[test]
    fn account_names_lead_back_to_their_attachment() {
        let name = account_name(&volume("vol-1"), &export("att-1", "scoria.x_y")).unwrap();
        assert_eq!(name, "scoria.x_y.vol-1.att-1");
        assert_eq!(account_owner(&name), Some(("vol-1", "att-1")));
        assert_eq!(account_owner("probeuser"), None);
        for (vol, att, user) in [
            ("v/1", "a", "u"),
            ("v", "a.b", "u"),
            ("v", "a", "u,x"),
            ("v", "a", ""),
        ] {
            assert!(
                matches!(
                    account_name(&volume(vol), &export(att, user)),
                    Err(DriverError::Invalid(_))
                ),
                "{vol} {att} {user}"
            );
        }
        assert!(validate_password("p4ss=word!").is_ok());
        for bad in ["", "a,b", "a b", "é"] {
            assert!(validate_password(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lun_mode_follows_the_first_read_only_export_until_a_read_write_one() {
        let mut target = parse_targets(SHOW).remove(1);
        assert_eq!(lun_readonly(&target, "me", AccessMode::Ro), Some(true));
        target.accounts.push("me".into());
        assert_eq!(lun_readonly(&target, "me", AccessMode::Ro), Some(true));
        target.accounts.push("other".into());
        assert_eq!(lun_readonly(&target, "me", AccessMode::Ro), None);
        assert_eq!(lun_readonly(&target, "me", AccessMode::Rw), Some(false));
    }

    #[test]
    fn options_have_cinder_defaults_and_are_validated() {
        let target = TgtTarget::new(&config(&[])).unwrap();
        assert_eq!(target.portal.to_string(), "127.0.0.1:3260");
        assert_eq!(target.iqn("v1"), "iqn.2010-10.org.openstack:volume-v1");
        assert_eq!(target.tgtadm, PathBuf::from("tgtadm"));
        let target = TgtTarget::new(&config(&[
            ("target_ip_address", "::1"),
            ("target_port", "3261"),
            ("target_prefix", "iqn.2026-01.org.scoria:"),
            ("tgtadm_path", "/usr/sbin/tgtadm"),
        ]))
        .unwrap();
        assert_eq!(target.portal.to_string(), "[::1]:3261");
        assert_eq!(target.iqn("v1"), "iqn.2026-01.org.scoria:volume-v1");
        for (key, value) in [
            ("target_ip_address", "localhost"),
            ("target_port", "0"),
            ("target_port", "70000"),
            ("target_prefix", "iqn x"),
        ] {
            assert!(
                matches!(
                    TgtTarget::new(&config(&[(key, value)])),
                    Err(DriverError::InvalidConfig(_))
                ),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn connection_info_has_the_keys_os_brick_reads() {
        let target = TgtTarget::new(&config(&[])).unwrap();
        let info =
            target.connection_info("iqn.x:volume-v", &volume("v"), "u.v.a", &export("a", "u"));
        assert_eq!(info.driver_volume_type, "iscsi");
        assert_eq!(
            Value::Object(info.data),
            serde_json::json!({
                "target_discovered": false,
                "target_portal": "127.0.0.1:3260",
                "target_iqn": "iqn.x:volume-v",
                "target_lun": 1,
                "volume_id": "v",
                "auth_method": "CHAP",
                "auth_username": "u.v.a",
                "auth_password": "secret",
                "access_mode": "rw",
                "encrypted": false,
            })
        );
    }
}
