//! The file driver exporting volumes over iSCSI through tgtd
//! (`target_helper = tgtadm`), checked with real initiators in userspace:
//! libiscsi's `iscsi-readcapacity16` for logins and sizes, and `qemu-img` with
//! `iscsi://` URLs for data. The compliance kit runs on the same driver.
//!
//! Needs, on this host: tgtd listening on 127.0.0.1:3260, `tgtadm`,
//! `iscsi-readcapacity16` (Debian `libiscsi-bin`) and a `qemu-img` with the
//! iscsi block driver (Debian bookworm's `qemu-utils` with `qemu-block-extra`).
//! `tests/run.sh` installs and starts them; every test here fails when one is
//! missing. Volume and attachment ids are fresh UUIDs, so these tests run in
//! parallel with each other and with anything else sharing the tgtd.

use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use scoria_core::config::BackendConfig;
use scoria_drivers::compliance::Fixture;
use scoria_drivers::{
    registry, AccessMode, Chap, ConnectionInfo, DriverError, ExportSpec, VolumeDriver, VolumeSpec,
};
use tokio::process::Command;

const PORTAL: &str = "127.0.0.1:3260";
const PREFIX: &str = "iqn.2010-10.org.openstack:";
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn config(dir: &Path, extra: &[(&str, &str)]) -> BackendConfig {
    let dir = dir.to_str().expect("UTF-8 temp path");
    let options = [("file_volumes_dir", dir), ("target_helper", "tgtadm")]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    BackendConfig {
        name: "iscsi-files".into(),
        driver: "file".into(),
        volume_backend_name: "iscsi-files".into(),
        options,
    }
}

async fn file_driver(dir: &Path) -> Arc<dyn VolumeDriver> {
    require_tools();
    let driver = registry::create(&config(dir, &[])).expect("file driver config");
    driver.setup().await.expect("file driver setup with tgtadm");
    driver
}

/// Panics, saying what to install, unless tgtd and the initiator tools are usable.
fn require_tools() {
    static TOOLS: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = TOOLS.get_or_init(|| {
        let run = |tool: &str, args: &[&str]| {
            std::process::Command::new(tool)
                .args(args)
                .output()
                .map_err(|e| format!("cannot run {tool}: {e}"))
        };
        let sys = run(
            "tgtadm",
            &["--lld", "iscsi", "--op", "show", "--mode", "sys"],
        )?;
        if !sys.status.success() {
            return Err(format!(
                "tgtd does not answer tgtadm: {}",
                String::from_utf8_lossy(&sys.stderr)
            ));
        }
        run("iscsi-readcapacity16", &["--help"])?;
        let qemu = run("qemu-img", &["--help"])?;
        if !String::from_utf8_lossy(&qemu.stdout).contains(" iscsi ") {
            return Err("qemu-img has no iscsi block driver".into());
        }
        Ok(())
    });
    if let Err(missing) = checked {
        panic!(
            "{missing}: these tests need tgtd running on {PORTAL}, tgtadm (tgt), \
             iscsi-readcapacity16 (libiscsi-bin) and qemu-img with iscsi \
             (bookworm's qemu-utils + qemu-block-extra); tests/run.sh sets them up"
        );
    }
}

/// A file driver with `target_helper = tgtadm` and the volumes a test made.
struct Harness {
    driver: Arc<dyn VolumeDriver>,
    dir: tempfile::TempDir,
    volumes: Mutex<Vec<VolumeSpec>>,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        Self {
            driver: file_driver(dir.path()).await,
            dir,
            volumes: Mutex::default(),
        }
    }

    async fn volume(&self, size: i64) -> VolumeSpec {
        let volume = VolumeSpec {
            id: uuid::Uuid::new_v4().to_string(),
            size,
            pool: None,
            provider_location: None,
            extra_specs: Default::default(),
        };
        self.volumes.lock().unwrap().push(volume.clone());
        self.driver
            .create_volume(&volume)
            .await
            .expect("create_volume");
        volume
    }

    fn backing_file(&self, volume: &VolumeSpec) -> std::path::PathBuf {
        self.dir.path().join(format!("volume-{}", volume.id))
    }

    async fn export(&self, volume: &VolumeSpec, export: &ExportSpec) -> ConnectionInfo {
        self.driver
            .initialize_connection(volume, export)
            .await
            .expect("initialize_connection")
    }

    async fn terminate(&self, volume: &VolumeSpec, attachment_id: Option<&str>) {
        self.driver
            .terminate_connection(volume, attachment_id)
            .await
            .expect("terminate_connection");
    }

    /// Deletes every volume made, which also removes their exports.
    async fn cleanup(&self) {
        let volumes = std::mem::take(&mut *self.volumes.lock().unwrap());
        for volume in volumes {
            self.driver
                .delete_volume(&volume)
                .await
                .expect("cleanup delete_volume");
        }
    }
}

/// Runs `test` on a fresh harness, then cleans up, also after a panic.
fn run<F, Fut>(test: F)
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let harness = Arc::new(Harness::new().await);
        let outcome = tokio::spawn(test(Arc::clone(&harness))).await;
        harness.cleanup().await;
        if let Err(failure) = outcome {
            std::panic::resume_unwind(failure.into_panic());
        }
    });
}

/// An export for a new attachment with its own credentials.
fn attachment(mode: AccessMode) -> ExportSpec {
    let connector = serde_json::json!({
        "host": "iscsi-test",
        "initiator": "iqn.2008-11.org.linux-kvm",
        "ip": "127.0.0.1",
    });
    ExportSpec {
        attachment_id: uuid::Uuid::new_v4().to_string(),
        connector: connector.as_object().cloned().unwrap_or_default(),
        access_mode: mode,
        auth: Chap {
            username: "scoria-test".into(),
            password: uuid::Uuid::new_v4().simple().to_string(),
        },
    }
}

fn field<'a>(info: &'a ConnectionInfo, key: &str) -> &'a str {
    info.data[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {info:?}"))
}

/// `iscsi://user%password@portal/iqn/lun` for the export in `info`.
fn url_with_password(info: &ConnectionInfo, password: &str) -> String {
    format!(
        "iscsi://{}%{password}@{}/{}/{}",
        field(info, "auth_username"),
        field(info, "target_portal"),
        field(info, "target_iqn"),
        info.data["target_lun"]
    )
}

fn url(info: &ConnectionInfo) -> String {
    url_with_password(info, field(info, "auth_password"))
}

/// Logs in and reads the LUN's capacity in bytes; `Err` holds the tool's output.
async fn capacity(url: &str) -> Result<u64, String> {
    let output = Command::new("iscsi-readcapacity16")
        .arg(url)
        .output()
        .await
        .expect("run iscsi-readcapacity16");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let size = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Total size:"))
        .and_then(|size| size.trim().parse().ok());
    match size {
        Some(size) if output.status.success() => Ok(size),
        _ => Err(format!(
            "{}{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

async fn qemu_img(args: &[&str]) -> Result<(), String> {
    let output = Command::new("qemu-img")
        .args(args)
        .output()
        .await
        .expect("run qemu-img");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// `len` bytes of the LUN at `offset`, logged in with the export's CHAP
/// credentials, as a qemu `json:` image name.
fn lun_region(info: &ConnectionInfo, offset: u64, len: u64) -> String {
    let image = serde_json::json!({
        "driver": "raw",
        "offset": offset,
        "size": len,
        "file": {
            "driver": "iscsi",
            "transport": "tcp",
            "portal": field(info, "target_portal"),
            "target": field(info, "target_iqn"),
            "lun": info.data["target_lun"],
            "user": field(info, "auth_username"),
            "password": field(info, "auth_password"),
        },
    });
    format!("json:{image}")
}

/// Writes `data` to the LUN at `offset` with qemu-img.
async fn write_through_iscsi(
    info: &ConnectionInfo,
    offset: u64,
    data: &[u8],
) -> Result<(), String> {
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("source.raw");
    std::fs::write(&source, data).unwrap();
    let region = lun_region(info, offset, data.len() as u64);
    let source = source.to_str().unwrap();
    qemu_img(&["convert", "-n", "-f", "raw", "-O", "raw", source, &region]).await
}

/// Reads `len` bytes of the LUN at `offset` with qemu-img.
async fn read_through_iscsi(info: &ConnectionInfo, offset: u64, len: u64) -> Vec<u8> {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("read.raw");
    let region = lun_region(info, offset, len);
    qemu_img(&["convert", "-O", "raw", &region, out.to_str().unwrap()])
        .await
        .expect("qemu-img read through iSCSI");
    std::fs::read(&out).expect("read qemu-img output")
}

/// One MiB of bytes that differ per `seed` and per position.
fn pattern(seed: u8) -> Vec<u8> {
    (0..MIB)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8 ^ seed)
        .collect()
}

/// The block `tgtadm --op show --mode target` prints for `iqn`, if it exists.
async fn tgt_target(iqn: &str) -> Option<String> {
    let show = tgtadm(&["--op", "show", "--mode", "target"]).await;
    let start = show
        .lines()
        .position(|l| l.ends_with(&format!(": {iqn}")))?;
    let block = show
        .lines()
        .skip(start)
        .enumerate()
        .take_while(|(i, line)| *i == 0 || !line.starts_with("Target "))
        .map(|(_, line)| line)
        .collect::<Vec<_>>();
    Some(block.join("\n"))
}

async fn tgt_accounts() -> String {
    tgtadm(&["--op", "show", "--mode", "account"]).await
}

async fn tgtadm(args: &[&str]) -> String {
    let output = Command::new("tgtadm")
        .args(["--lld", "iscsi"])
        .args(args)
        .output()
        .await
        .expect("run tgtadm");
    assert!(
        output.status.success(),
        "tgtadm {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `Target <tid>: ...` of a target block.
fn tid(block: &str) -> String {
    block
        .strip_prefix("Target ")
        .and_then(|rest| rest.split_once(':'))
        .map(|(tid, _)| tid.to_string())
        .expect("target header")
}

#[test]
fn connection_info_has_the_iscsi_keys_and_repeats() {
    run(|h| async move {
        let volume = h.volume(1).await;
        let export = attachment(AccessMode::Rw);
        let info = h.export(&volume, &export).await;
        assert_eq!(info.driver_volume_type, "iscsi");
        let iqn = format!("{PREFIX}volume-{}", volume.id);
        let account = format!(
            "{}.{}.{}",
            export.auth.username, volume.id, export.attachment_id
        );
        let expected = serde_json::json!({
            "target_discovered": false,
            "target_portal": PORTAL,
            "target_iqn": iqn,
            "target_lun": 1,
            "volume_id": volume.id,
            "auth_method": "CHAP",
            "auth_username": account,
            "auth_password": export.auth.password,
            "access_mode": "rw",
            "encrypted": false,
        });
        assert_eq!(serde_json::Value::Object(info.data.clone()), expected);
        assert_eq!(h.export(&volume, &export).await, info, "repeated export");
        let block = tgt_target(&iqn).await.expect("target in tgtd");
        assert!(block.contains(&account), "{block}");
        assert!(
            block.contains(h.backing_file(&volume).to_str().unwrap()),
            "{block}"
        );
    });
}

#[test]
fn chap_login_sees_the_volume_size() {
    run(|h| async move {
        let volume = h.volume(2).await;
        let info = h.export(&volume, &attachment(AccessMode::Rw)).await;
        assert_eq!(capacity(&url(&info)).await, Ok(2 * GIB));
    });
}

#[test]
fn wrong_or_missing_chap_credentials_are_refused() {
    run(|h| async move {
        let volume = h.volume(1).await;
        let info = h.export(&volume, &attachment(AccessMode::Rw)).await;
        let wrong = capacity(&url_with_password(&info, "wrong-password")).await;
        let failure = wrong.expect_err("login with a wrong CHAP password succeeded");
        assert!(failure.contains("Authentication failure"), "{failure}");
        let anonymous = format!("iscsi://{PORTAL}/{}/1", field(&info, "target_iqn"));
        capacity(&anonymous)
            .await
            .expect_err("login without CHAP succeeded");
        assert_eq!(capacity(&url(&info)).await, Ok(GIB));
    });
}

#[test]
fn data_written_through_iscsi_reads_back_and_lands_in_the_file() {
    run(|h| async move {
        let volume = h.volume(1).await;
        let info = h.export(&volume, &attachment(AccessMode::Rw)).await;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(h.backing_file(&volume))
            .unwrap();
        // The start, an unaligned spot, and the last MiB of the volume.
        for (seed, offset) in [(1, 0), (2, 3 * 4096 + 17), (3, GIB - MIB)] {
            write_through_iscsi(&info, offset, &pattern(seed))
                .await
                .unwrap();
            let back = read_through_iscsi(&info, offset, MIB).await;
            assert!(back == pattern(seed), "read back at {offset} differs");
            let mut stored = vec![0; MIB as usize];
            file.read_exact_at(&mut stored, offset).unwrap();
            assert!(
                stored == pattern(seed),
                "the file at {offset} lacks the pattern"
            );
        }
        // The other way round: the LUN shows what is written to the file.
        file.write_all_at(&pattern(4), GIB / 2).unwrap();
        file.sync_all().unwrap();
        assert!(read_through_iscsi(&info, GIB / 2, MIB).await == pattern(4));
    });
}

#[test]
fn read_only_export_refuses_writes() {
    run(|h| async move {
        let volume = h.volume(1).await;
        let info = h.export(&volume, &attachment(AccessMode::Ro)).await;
        assert_eq!(field(&info, "access_mode"), "ro");
        let refused = write_through_iscsi(&info, 0, &pattern(5)).await;
        let failure = refused.expect_err("writing to a read-only export succeeded");
        assert!(failure.contains("write protected"), "{failure}");
        assert!(read_through_iscsi(&info, 0, MIB).await == vec![0; MIB as usize]);
        // A read-write attachment of the same volume makes the LUN writable.
        let rw = h.export(&volume, &attachment(AccessMode::Rw)).await;
        write_through_iscsi(&rw, 0, &pattern(5)).await.unwrap();
        assert!(read_through_iscsi(&info, 0, MIB).await == pattern(5));
    });
}

#[test]
fn attachments_share_a_target_and_go_one_by_one() {
    run(|h| async move {
        let volume = h.volume(1).await;
        let mut exports = Vec::new();
        for _ in 0..3 {
            let export = attachment(AccessMode::Rw);
            let info = h.export(&volume, &export).await;
            exports.push((export.attachment_id, info));
        }
        let iqn = field(&exports[0].1, "target_iqn").to_string();
        for (_, info) in &exports {
            assert_eq!(field(info, "target_iqn"), iqn, "one target per volume");
            assert_eq!(capacity(&url(info)).await, Ok(GIB));
        }

        // The middle one first: tgtd must keep the others' bindings usable.
        for leaving in [1, 0, 2] {
            let (attachment_id, info) = &exports[leaving];
            h.terminate(&volume, Some(attachment_id)).await;
            capacity(&url(info))
                .await
                .expect_err("login of a terminated attachment succeeded");
            assert!(!tgt_accounts().await.contains(field(info, "auth_username")));
            let staying = match leaving {
                1 => &[0, 2][..],
                0 => &[2][..],
                _ => &[][..],
            };
            for &other in staying {
                let info = &exports[other].1;
                assert_eq!(capacity(&url(info)).await, Ok(GIB), "attachment {other}");
            }
        }
        assert_eq!(
            tgt_target(&iqn).await,
            None,
            "target left after the last terminate"
        );
        h.terminate(&volume, Some(&exports[2].0)).await;
    });
}

#[test]
fn terminate_of_every_attachment_removes_target_and_accounts() {
    run(|h| async move {
        let volume = h.volume(1).await;
        let info = h.export(&volume, &attachment(AccessMode::Rw)).await;
        h.export(&volume, &attachment(AccessMode::Ro)).await;
        h.terminate(&volume, None).await;
        assert_eq!(tgt_target(field(&info, "target_iqn")).await, None);
        assert!(!tgt_accounts().await.contains(&volume.id));
        capacity(&url(&info))
            .await
            .expect_err("login after terminating every attachment succeeded");
        h.terminate(&volume, None).await;
    });
}

#[test]
fn export_again_restores_a_target_deleted_behind_the_driver() {
    run(|h| async move {
        let volume = h.volume(1).await;
        let export = attachment(AccessMode::Rw);
        let info = h.export(&volume, &export).await;
        let iqn = field(&info, "target_iqn");
        let block = tgt_target(iqn).await.expect("target in tgtd");
        tgtadm(&[
            "--op",
            "delete",
            "--mode",
            "target",
            "--tid",
            &tid(&block),
            "--force",
        ])
        .await;
        capacity(&url(&info))
            .await
            .expect_err("login to a deleted target succeeded");

        assert_eq!(h.export(&volume, &export).await, info, "restored export");
        assert_eq!(capacity(&url(&info)).await, Ok(GIB));
    });
}

#[test]
fn deleting_a_volume_removes_its_export() {
    run(|h| async move {
        let volume = h.volume(1).await;
        let info = h.export(&volume, &attachment(AccessMode::Rw)).await;
        h.driver
            .delete_volume(&volume)
            .await
            .expect("delete_volume");
        assert_eq!(tgt_target(field(&info, "target_iqn")).await, None);
        assert!(!tgt_accounts().await.contains(&volume.id));
    });
}

#[test]
fn setup_says_when_tgt_is_unusable() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        for (extra, says) in [
            (
                ("tgtadm_path", "/nonexistent/tgtadm"),
                "install the tgt package",
            ),
            (
                ("target_port", "1"),
                "nothing accepts iSCSI logins on 127.0.0.1:1",
            ),
        ] {
            let driver = registry::create(&config(dir.path(), &[extra])).unwrap();
            match driver.setup().await {
                Err(DriverError::Backend { message, .. }) => {
                    assert!(message.contains(says), "{extra:?}: {message}")
                }
                other => panic!("{extra:?}: setup gave {other:?}"),
            }
        }
    });
}

async fn compliance_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    Fixture::new(file_driver(dir.path()).await).keeping(dir)
}

mod compliance {
    scoria_drivers::compliance_tests!(super::compliance_fixture);
}
