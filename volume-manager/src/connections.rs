//! Exports for attachments: the `call`s that make and remove them, and their
//! restoration when the service starts.
//!
//! The api owns the attachment records; it asks for an export with a `call`
//! and stores the answer. What the volume manager needs to restore an export
//! (connector, access mode, credentials) is on the attachment before the
//! export is made, so a restart can always redo it.

use scoria_core::model::{Attachment, ConnectionInfo, Volume, VOLUME_BINARY};
use scoria_core::{Error, Result};
use scoria_drivers::{AccessMode, DriverError, ExportSpec};

use crate::VolumeManager;

/// The error a failed driver call gives to the api.
fn driver_error(e: DriverError) -> Error {
    match e {
        DriverError::NotFound { .. } => Error::NotFound(e.to_string()),
        DriverError::Unsupported(_) => Error::Unsupported(e.to_string()),
        other => Error::Backend(other.to_string()),
    }
}

impl VolumeManager {
    /// The volume, if it lives on this backend.
    async fn own_volume(&self, volume_id: &str) -> Result<Volume> {
        let vol = self.db.get_volume(volume_id).await?;
        if vol.backend() != Some(self.cfg.backend.as_str()) {
            return Err(Error::BadRequest(format!(
                "Volume {volume_id} is not on backend {}.",
                self.cfg.backend
            )));
        }
        Ok(vol)
    }

    /// Exports a volume for one attachment and returns how to reach it.
    pub(crate) async fn initialize_connection(
        &self,
        volume_id: &str,
        export: &ExportSpec,
    ) -> Result<ConnectionInfo> {
        let vol = self.own_volume(volume_id).await?;
        let spec = self.volume_spec(&vol).await?;
        let info = self
            .driver
            .initialize_connection(&spec, export)
            .await
            .map_err(|e| {
                tracing::error!(volume = volume_id, attachment = %export.attachment_id, error = %e, "export failed");
                driver_error(e)
            })?;
        tracing::info!(volume = volume_id, attachment = %export.attachment_id, kind = %info.driver_volume_type, "exported");
        Ok(info)
    }

    /// Removes one attachment's export, or all of the volume's.
    pub(crate) async fn terminate_connection(
        &self,
        volume_id: &str,
        attachment_id: Option<&str>,
    ) -> Result<()> {
        let vol = match self.own_volume(volume_id).await {
            Ok(v) => v,
            // Nothing of a deleted volume is left to unexport.
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let spec = self.volume_spec(&vol).await?;
        self.driver
            .terminate_connection(&spec, attachment_id)
            .await
            .map_err(driver_error)?;
        tracing::info!(volume = volume_id, attachment = ?attachment_id, "unexported");
        Ok(())
    }

    /// Recreates the export of every attachment that holds one on this
    /// backend (a target may have vanished with the service or its host).
    pub(crate) async fn restore_exports(&self) -> Result<()> {
        let attachments = self
            .db
            .exported_attachments(self.cfg.backend.as_str())
            .await?;
        let mut restored = 0;
        for a in &attachments {
            let Some(export) = export_of(a) else {
                tracing::warn!(attachment = %a.id, "attachment has connection info but no connector or credentials; not restored");
                continue;
            };
            match self.initialize_connection(&a.volume_id, &export).await {
                Ok(_) => restored += 1,
                Err(e) => {
                    tracing::error!(attachment = %a.id, volume = %a.volume_id, error = %e, "could not restore export")
                }
            }
        }
        tracing::info!(
            restored,
            of = attachments.len(),
            binary = VOLUME_BINARY,
            "exports restored"
        );
        Ok(())
    }
}

/// The export an attachment asked for, if it has a connector and credentials.
fn export_of(a: &Attachment) -> Option<ExportSpec> {
    Some(ExportSpec {
        attachment_id: a.id.clone(),
        connector: a.connector.clone()?,
        access_mode: a.attach_mode.unwrap_or(AccessMode::Rw),
        auth: a.auth.clone()?,
    })
}
