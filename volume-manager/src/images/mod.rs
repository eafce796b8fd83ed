//! Images: a new volume filled from a Glance image, a volume uploaded into
//! one, and the image-volume cache. The data goes through the volume's
//! local path ([`scoria_drivers::VolumeDriver::local_attach`]): `raw`
//! streams straight between Glance and the volume; other formats pass
//! through `qemu-img` and, where it needs random access, a temporary file
//! in the backend's conversion folder.

mod cache;
mod hash;
mod qemu;
mod scratch;
mod transfer;

use std::path::PathBuf;
use std::sync::Arc;

use scoria_core::events::{Action, Detail};
use scoria_core::host::Host;
use scoria_core::model::{admin_keys, Volume};
use scoria_core::rpc::ImageUpload;
use scoria_core::status::VolumeStatus;
use scoria_core::transitions::volume;
use scoria_core::{RequestContext, Result};
use scoria_db::{VolumeChanges, VolumeGuard};
use scoria_glance::{Glance, GlanceError, Image};

pub(crate) use cache::CacheLocks;
pub use cache::{CacheLimits, CacheOptions, InternalTenantOptions};
pub use scratch::Scratch;

use crate::handlers::Failure;
use crate::{present, VolumeManager};
use hash::Expected;
use transfer::Sink;

const GIB: u64 = 1 << 30;

/// A volume manager's image settings.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    pub glance: Arc<Glance>,
    /// This backend's conversion folder (`image_conversion_dir`).
    pub scratch: Scratch,
    /// The image-volume cache, when enabled for the backend and an internal
    /// project is configured.
    pub cache: Option<CacheSettings>,
}

/// The image-volume cache of one backend.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub limits: CacheLimits,
    /// `cinder_internal_tenant_project_id`: owns the cached volumes.
    pub project_id: String,
    /// `cinder_internal_tenant_user_id`.
    pub user_id: String,
}

/// Why an image operation failed, and which user message says so.
pub(crate) struct ImageFailure {
    pub detail: Detail,
    pub text: String,
}

impl From<String> for ImageFailure {
    fn from(text: String) -> Self {
        ImageFailure {
            detail: Detail::UnknownError,
            text,
        }
    }
}

impl From<GlanceError> for ImageFailure {
    fn from(e: GlanceError) -> Self {
        ImageFailure::from(e.to_string())
    }
}

impl From<scoria_core::Error> for ImageFailure {
    fn from(e: scoria_core::Error) -> Self {
        ImageFailure::from(e.to_string())
    }
}

impl VolumeManager {
    fn images(&self) -> &ImageSettings {
        &self.cfg.images
    }

    /// The image `id`, checked as a source of a volume: active, held in a
    /// `bare` container, in a format Scoria can write.
    pub(crate) async fn source_image(
        &self,
        ctx: &RequestContext,
        id: &str,
    ) -> std::result::Result<Image, ImageFailure> {
        let image = self.images().glance.image(ctx, id).await?;
        if image.status != "active" {
            return Err(format!("image {id} is {}, not active", image.status).into());
        }
        let container = image.container_format.as_deref().unwrap_or("bare");
        if container != "bare" {
            return Err(format!(
                "image {id} has container_format {container}; only bare images can be copied into volumes"
            )
            .into());
        }
        match image.disk_format.as_deref() {
            Some(f) if qemu::qemu_format(f).is_some() => Ok(image),
            other => Err(format!(
                "image {id} has disk_format {}, which cannot be copied into a volume",
                other.unwrap_or("(none)")
            )
            .into()),
        }
    }

    /// Makes `vol` (in `creating`, placed on `host`) as a clone of a volume
    /// that already holds `image`: the image's own volume (glance_store's
    /// `cinder` store, when `allowed_direct_url_schemes` has `cinder`) or
    /// the image-volume cache's. `None`: the image must be downloaded.
    pub(crate) async fn clone_for_image(
        &self,
        ctx: &RequestContext,
        vol: &Volume,
        host: &Host,
        image: &Image,
    ) -> Result<Option<std::result::Result<Option<String>, ImageFailure>>> {
        if let Some(source) = self.image_volume(image).await? {
            let spec = self.volume_spec(vol).await?;
            let source_spec = self.volume_spec(&source).await?;
            tracing::info!(volume = %vol.id, image = %image.id, source = %source.id, "cloning the image's own volume");
            let outcome = match self.driver.create_cloned_volume(&spec, &source_spec).await {
                Ok(update) => Ok(update.applied(spec).provider_location),
                Err(e) => {
                    Err(format!("cloning the image's volume {} failed: {e}", source.id).into())
                }
            };
            return Ok(Some(outcome));
        }
        match &self.images().cache {
            None => Ok(None),
            Some(cache) => self
                .clone_from_cache(ctx, vol, host, image, cache)
                .await
                .map(Some),
        }
    }

    /// The available volume of this backend that holds `image` as
    /// glance_store's `cinder` store keeps it (`cinder://<volume id>`).
    async fn image_volume(&self, image: &Image) -> Result<Option<Volume>> {
        let allowed = &self.images().glance.config().direct_url_schemes;
        if !allowed.iter().any(|s| s == "cinder") {
            return Ok(None);
        }
        let Some(id) = image.cinder_volume() else {
            return Ok(None);
        };
        let Some(source) = present(self.db.get_volume(&id).await)? else {
            return Ok(None);
        };
        let here = source.backend() == Some(self.cfg.backend.as_str());
        Ok((here && source.status == VolumeStatus::Available).then_some(source))
    }

    /// Writes `image` into the volume `vol` (made by the driver, reading as
    /// zeros), verifying its hash and what it holds.
    pub(crate) async fn fill_volume(
        &self,
        ctx: &RequestContext,
        vol: &Volume,
        image: &Image,
    ) -> std::result::Result<(), ImageFailure> {
        let spec = self.volume_spec(vol).await?;
        let device = self
            .driver
            .local_attach(&spec)
            .await
            .map_err(|e| format!("the volume could not be opened on its host: {e}"))?;
        let outcome = self.write_image(ctx, vol, image, &device.path).await;
        if let Err(e) = self.driver.local_detach(&spec).await {
            tracing::warn!(volume = %vol.id, error = %e, "local detach failed");
        }
        outcome
    }

    async fn write_image(
        &self,
        ctx: &RequestContext,
        vol: &Volume,
        image: &Image,
        path: &std::path::Path,
    ) -> std::result::Result<(), ImageFailure> {
        let volume_bytes = vol.size as u64 * GIB;
        if image.disk_bytes() > volume_bytes {
            return Err(ImageFailure {
                detail: Detail::NotEnoughSpaceForImage,
                text: format!(
                    "image {} needs {} bytes and the volume has {volume_bytes}",
                    image.id,
                    image.disk_bytes()
                ),
            });
        }
        let expected = Expected::of(image);
        let hasher = expected.as_ref().map_or_else(
            || hash::ImageHash::new("md5").expect("md5 is known"),
            Expected::hasher,
        );
        let disk_format = image.disk_format.as_deref().unwrap_or("raw");
        let glance = &self.images().glance;
        if disk_format == "raw" {
            let data = glance.download(ctx, &image.id).await?;
            let sink = Sink::Volume {
                path,
                limit: volume_bytes,
            };
            let written = transfer::download(data, sink, hasher).await?;
            verify(&expected, image, &written)?;
            qemu::info(path, None).await?.check("raw", volume_bytes)?;
            return Ok(());
        }
        let format = qemu::qemu_format(disk_format).unwrap_or(disk_format);
        let temp = self
            .images()
            .scratch
            .reserve(&vol.id, "download", image.size.unwrap_or(0))
            .await
            .map_err(|text| ImageFailure {
                detail: Detail::NotEnoughSpaceForImage,
                text,
            })?;
        let data = glance.download(ctx, &image.id).await?;
        let written = transfer::download(data, Sink::NewFile { path: &temp.path }, hasher).await?;
        verify(&expected, image, &written)?;
        qemu::info(&temp.path, None)
            .await?
            .check(disk_format, volume_bytes)?;
        qemu::convert(&temp.path, format, path, "raw", true).await?;
        Ok(())
    }

    /// Finishes the create of `vol` (in `creating`, made by the driver as
    /// `made` records) by filling it from `image` in `downloading`.
    pub(crate) async fn download_into(
        &self,
        ctx: &RequestContext,
        vol: &Volume,
        image: &Image,
        made: VolumeChanges,
    ) -> Result<()> {
        let op = &volume::DOWNLOAD;
        let downloading = VolumeChanges {
            status: op.interim,
            ..made
        };
        let creating = VolumeGuard::status_in(volume::CREATE.in_progress());
        if !self
            .db
            .update_volume(&vol.id, &downloading, creating)
            .await?
        {
            return Ok(());
        }
        let mut vol = vol.clone();
        vol.provider_location = downloading.provider_location.clone().flatten();
        tracing::info!(volume = %vol.id, image = %image.id, "copying image into volume");
        match self.fill_volume(ctx, &vol, image).await {
            Ok(()) => {
                self.finish_image_create(&vol, image, op.in_progress(), VolumeChanges::default())
                    .await
            }
            Err(why) => {
                self.fail_image_create(ctx, &vol, &image.id, op.in_progress(), why)
                    .await
            }
        }
    }

    /// Records that `vol`, held in one of `from`, now holds `image`: it is
    /// available and bootable, with the image's metadata (and `made`).
    pub(crate) async fn finish_image_create(
        &self,
        vol: &Volume,
        image: &Image,
        from: &[VolumeStatus],
        made: VolumeChanges,
    ) -> Result<()> {
        let mut admin = vol.admin_metadata.clone();
        admin.remove(admin_keys::IMAGE_SOURCE);
        self.db
            .replace_volume_image_metadata(&vol.id, &image.volume_metadata())
            .await?;
        let done = VolumeChanges {
            status: volume::DOWNLOAD.to.status(),
            bootable: Some(true),
            admin_metadata: Some(admin),
            ..made
        };
        if self
            .db
            .update_volume(&vol.id, &done, VolumeGuard::status_in(from))
            .await?
        {
            tracing::info!(volume = %vol.id, image = %image.id, "volume created from image");
        }
        Ok(())
    }

    /// Records that `vol`, held in one of `from`, could not be made from
    /// the image `image_id`, and tells its owner why.
    pub(crate) async fn fail_image_create(
        &self,
        ctx: &RequestContext,
        vol: &Volume,
        image_id: &str,
        from: &[VolumeStatus],
        why: ImageFailure,
    ) -> Result<()> {
        tracing::error!(volume = %vol.id, image = %image_id, error = %why.text, "create from image failed");
        let mut admin = vol.admin_metadata.clone();
        admin.remove(admin_keys::IMAGE_SOURCE);
        let failed = VolumeChanges {
            status: volume::DOWNLOAD.failed,
            admin_metadata: Some(admin),
            ..Default::default()
        };
        let text = format!(
            "image {image_id} could not be copied into the volume: {}",
            why.text
        );
        self.fail_volume(
            ctx,
            &vol.id,
            &failed,
            VolumeGuard::status_in(from),
            Failure {
                action: Action::CopyImageToVolume,
                detail: why.detail,
                text: &text,
            },
        )
        .await
    }

    /// Uploads the volume in `uploading` into the Glance image the api made.
    pub(crate) async fn upload_image(
        &self,
        ctx: &RequestContext,
        volume_id: &str,
        image: &ImageUpload,
    ) -> Result<()> {
        let Some(vol) = present(self.db.get_volume(volume_id).await)? else {
            return Ok(());
        };
        let ours = vol.admin_metadata.get(admin_keys::IMAGE_UPLOAD) == Some(&image.image_id);
        if volume::UPLOAD_IMAGE.interim != Some(vol.status) || !ours {
            return Ok(());
        }
        tracing::info!(volume = %vol.id, image = %image.image_id, format = %image.disk_format, "uploading volume to image");
        let outcome = self.send_volume(ctx, &vol, image).await;
        let why = outcome.err().map(|f| {
            format!(
                "the volume could not be uploaded to image {}: {}",
                image.image_id, f.text
            )
        });
        self.finish_upload(ctx, &vol, &image.image_id, why.as_deref())
            .await
    }

    async fn send_volume(
        &self,
        ctx: &RequestContext,
        vol: &Volume,
        image: &ImageUpload,
    ) -> std::result::Result<(), ImageFailure> {
        let Some(format) = qemu::qemu_format(&image.disk_format) else {
            return Err(format!("disk_format {} is not supported", image.disk_format).into());
        };
        let spec = self.volume_spec(vol).await?;
        let device = self
            .driver
            .local_attach(&spec)
            .await
            .map_err(|e| format!("the volume could not be opened on its host: {e}"))?;
        let outcome = async {
            let glance = &self.images().glance;
            if format == "raw" {
                let body = transfer::body_of(&device.path).map_err(|e| e.to_string())?;
                return Ok(glance.upload(ctx, &image.image_id, body).await?);
            }
            let temp = self
                .images()
                .scratch
                .reserve(&vol.id, "upload", vol.size as u64 * GIB)
                .await?;
            qemu::convert(&device.path, "raw", &temp.path, format, false).await?;
            let body = transfer::body_of(&temp.path).map_err(|e| e.to_string())?;
            glance.upload(ctx, &image.image_id, body).await?;
            Ok(())
        }
        .await;
        if let Err(e) = self.driver.local_detach(&spec).await {
            tracing::warn!(volume = %vol.id, error = %e, "local detach failed");
        }
        outcome
    }

    /// Returns the volume from `uploading` to the status its attachments
    /// imply; after a failure (`why`), deletes the half-made image and tells
    /// the owner.
    pub(crate) async fn finish_upload(
        &self,
        ctx: &RequestContext,
        vol: &Volume,
        image_id: &str,
        why: Option<&str>,
    ) -> Result<()> {
        if why.is_some() && !image_id.is_empty() {
            if let Err(e) = self.images().glance.delete(ctx, image_id).await {
                tracing::error!(image = %image_id, error = %e, "could not delete the image of a failed upload");
            }
        }
        let mut admin = vol.admin_metadata.clone();
        admin.remove(admin_keys::IMAGE_UPLOAD);
        let back = if vol.attachments.is_empty() {
            VolumeStatus::Available
        } else {
            VolumeStatus::InUse
        };
        let changes = VolumeChanges {
            status: Some(back),
            admin_metadata: Some(admin),
            ..Default::default()
        };
        let guard = VolumeGuard::status_in(volume::UPLOAD_IMAGE.in_progress());
        match why {
            None => {
                if self.db.update_volume(&vol.id, &changes, guard).await? {
                    tracing::info!(volume = %vol.id, image = %image_id, "volume uploaded to image");
                }
                Ok(())
            }
            Some(text) => {
                tracing::error!(volume = %vol.id, image = %image_id, error = %text, "upload to image failed");
                self.fail_volume(
                    ctx,
                    &vol.id,
                    &changes,
                    guard,
                    Failure {
                        action: Action::CopyVolumeToImage,
                        detail: Detail::FailedToUploadVolume,
                        text,
                    },
                )
                .await
            }
        }
    }
}

/// Checks a download against the image's hash and size.
fn verify(
    expected: &Option<Expected>,
    image: &Image,
    written: &transfer::Written,
) -> std::result::Result<(), String> {
    if let Some(size) = image.size {
        if written.bytes != size {
            return Err(format!(
                "Glance sent {} bytes of image {} whose size is {size}",
                written.bytes, image.id
            ));
        }
    }
    match expected {
        Some(e) => e.verify(&written.hash),
        None => {
            tracing::warn!(image = %image.id, "the image has no hash to verify its data against");
            Ok(())
        }
    }
}

/// The conversion folder of `backend` under `image_conversion_dir` (the
/// system temporary folder when unset).
pub fn scratch_for(image_conversion_dir: Option<&str>, backend: &str) -> Scratch {
    let root = image_conversion_dir
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("scoria-conversion"));
    Scratch::new(&root, backend)
}
