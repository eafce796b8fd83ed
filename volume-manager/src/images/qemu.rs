//! `qemu-img`, run with limits on untrusted images: what a file holds
//! (`info`) and conversions between formats (`convert`).

use std::path::Path;
use std::process::Stdio;

use serde::Deserialize;
use tokio::process::Command;

/// Address space `qemu-img info` may use (as Cinder limits it).
const INFO_MEMORY_LIMIT: u64 = 1 << 30;
/// CPU seconds `qemu-img info` may use.
const INFO_CPU_SECONDS: u64 = 30;

/// What `qemu-img info` reports of a file.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Info {
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    #[serde(rename = "backing-filename", default)]
    pub backing_filename: Option<String>,
    #[serde(rename = "format-specific", default)]
    pub format_specific: Option<FormatSpecific>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FormatSpecific {
    #[serde(default)]
    pub data: serde_json::Value,
}

/// qemu's name of a Glance disk format.
pub(crate) fn qemu_format(disk_format: &str) -> Option<&'static str> {
    Some(match disk_format {
        "raw" => "raw",
        "qcow2" => "qcow2",
        "vmdk" => "vmdk",
        "vdi" => "vdi",
        "vhd" => "vpc",
        "vhdx" => "vhdx",
        "ploop" => "parallels",
        _ => return None,
    })
}

impl Info {
    /// Checks what arrived against what the image declares, as Cinder's
    /// image checks do: the format, no backing or external data file, a
    /// VMDK only as one self-contained file, a disk that fits the volume.
    pub fn check(&self, disk_format: &str, volume_bytes: u64) -> Result<(), String> {
        let declared = qemu_format(disk_format).unwrap_or(disk_format);
        if self.format != declared {
            return Err(format!(
                "the image declares disk_format {disk_format} but its data is {}",
                self.format
            ));
        }
        if let Some(b) = &self.backing_filename {
            return Err(format!(
                "the image has a backing file ({b}); images with backing files are refused"
            ));
        }
        let data = self.format_specific.as_ref().map(|f| &f.data);
        if let Some(file) = data.and_then(|d| d.get("data-file")) {
            return Err(format!(
                "the image has an external data file ({file}); such images are refused"
            ));
        }
        if self.format == "vmdk" {
            let kind = data
                .and_then(|d| d.get("create-type"))
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if !matches!(kind, "monolithicSparse" | "streamOptimized") {
                return Err(format!(
                    "VMDK images of type '{kind}' are refused; use monolithicSparse or streamOptimized"
                ));
            }
        }
        if self.virtual_size > volume_bytes {
            return Err(format!(
                "the image's virtual size is {} bytes, larger than the volume's {volume_bytes} bytes",
                self.virtual_size
            ));
        }
        Ok(())
    }
}

/// `qemu-img info` of `path`; `format` given, or probed when `None`.
pub(crate) async fn info(path: &Path, format: Option<&str>) -> Result<Info, String> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["info", "--output=json"]);
    if let Some(f) = format {
        cmd.args(["-f", f]);
    }
    cmd.arg(path);
    limit(&mut cmd);
    let out = run(cmd, "qemu-img info").await?;
    serde_json::from_slice(&out)
        .map_err(|e| format!("qemu-img info said something unexpected: {e}"))
}

/// `qemu-img convert` of `src` (in `src_format`) into `dst` (in
/// `dst_format`). With `into_zeroed`, `dst` exists and reads as zeros (a
/// new volume): it is written in place and zero areas are skipped.
pub(crate) async fn convert(
    src: &Path,
    src_format: &str,
    dst: &Path,
    dst_format: &str,
    into_zeroed: bool,
) -> Result<(), String> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["convert", "-f", src_format, "-O", dst_format]);
    if into_zeroed {
        cmd.args(["-n", "--target-is-zero"]);
    }
    cmd.arg(src).arg(dst);
    // SAFETY: only an async-signal-safe prctl runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            die_with_parent();
            Ok(())
        });
    }
    run(cmd, "qemu-img convert").await.map(drop)
}

/// Limits the memory and CPU time of a `qemu-img` that reads an untrusted image.
fn limit(cmd: &mut Command) {
    // SAFETY: only async-signal-safe setrlimit calls run between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let set = |res, n: u64| {
                let l = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                libc::setrlimit(res, &l)
            };
            set(libc::RLIMIT_AS, INFO_MEMORY_LIMIT);
            set(libc::RLIMIT_CPU, INFO_CPU_SECONDS);
            die_with_parent();
            Ok(())
        });
    }
}

/// In a forked child: be killed when the volume service dies (a `kill -9`
/// must not leave a conversion running on its own).
fn die_with_parent() {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
}

async fn run(mut cmd: Command, what: &str) -> Result<Vec<u8>, String> {
    let out = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("{what} could not be run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{what} failed: {}", err.trim()));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(json: serde_json::Value) -> Info {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn checks_refuse_what_cinder_refuses() {
        let ok = info(serde_json::json!({"format": "qcow2", "virtual-size": 1024}));
        assert!(ok.check("qcow2", 4096).is_ok());
        assert!(ok
            .check("raw", 4096)
            .unwrap_err()
            .contains("declares disk_format raw"));
        assert!(ok.check("qcow2", 512).unwrap_err().contains("virtual size"));
        let backed = info(
            serde_json::json!({"format": "qcow2", "virtual-size": 1, "backing-filename": "/etc/passwd"}),
        );
        assert!(backed
            .check("qcow2", 4096)
            .unwrap_err()
            .contains("backing file"));
        let external = info(serde_json::json!({"format": "qcow2", "virtual-size": 1,
            "format-specific": {"type": "qcow2", "data": {"data-file": "/dev/sda"}}}));
        assert!(external
            .check("qcow2", 4096)
            .unwrap_err()
            .contains("external data file"));
        let vmdk = info(serde_json::json!({"format": "vmdk", "virtual-size": 1,
            "format-specific": {"type": "vmdk", "data": {"create-type": "monolithicFlat"}}}));
        assert!(vmdk.check("vmdk", 4096).is_err());
        let vhd = info(serde_json::json!({"format": "vpc", "virtual-size": 1}));
        assert!(vhd.check("vhd", 4096).is_ok());
    }
}
