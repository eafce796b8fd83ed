//! The image-volume cache of one backend: the first volume made from an
//! image on a backend fills a cached volume (owned by the internal project);
//! every later one is a clone of it (a reflink on filesystems that have
//! them). Entries are dropped when the image has changed in Glance, and the
//! least recently used go when `image_volume_cache_max_count` or
//! `_max_size_gb` is passed. Creates of one image wait for each other, so
//! concurrent creates of an uncached image download it once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use scoria_core::config::{OptionDoc, Options};
use scoria_core::host::Host;
use scoria_core::model::{admin_keys, Volume};
use scoria_core::status::VolumeStatus;
use scoria_core::transitions::volume;
use scoria_core::{time, RequestContext, Result};
use scoria_db::{CacheEntry, VolumeChanges, VolumeGuard};
use scoria_glance::Image;

use super::{CacheSettings, ImageFailure, GIB};
use crate::{present, VolumeManager};

/// A backend section's image-volume cache options, as written.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CacheOptions {
    pub image_volume_cache_enabled: bool,
    pub image_volume_cache_max_size_gb: i64,
    pub image_volume_cache_max_count: i64,
}

impl Options for CacheOptions {
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::same_as_cinder(
            "image_volume_cache_enabled",
            "false",
            "Keep a volume of each image used on this backend and clone it for later volumes of the image (needs the internal project).",
        ),
        OptionDoc::same_as_cinder(
            "image_volume_cache_max_size_gb",
            "0",
            "GiB the cached volumes may take together (0: no limit); the least recently used go first.",
        ),
        OptionDoc::same_as_cinder(
            "image_volume_cache_max_count",
            "0",
            "Cached volumes kept at most (0: no limit).",
        ),
    ];
}

impl CacheOptions {
    /// The cache these options describe, owned by the internal project
    /// (`project`, `user`); `None` when disabled. Enabled without an
    /// internal project is a configuration error.
    pub fn settings(
        &self,
        backend: &str,
        internal: Option<(&str, &str)>,
    ) -> std::result::Result<Option<CacheSettings>, String> {
        if !self.image_volume_cache_enabled {
            return Ok(None);
        }
        let Some((project_id, user_id)) = internal else {
            return Err(format!(
                "[{backend}] image_volume_cache_enabled needs [DEFAULT] cinder_internal_tenant_project_id and cinder_internal_tenant_user_id"
            ));
        };
        Ok(Some(CacheSettings {
            limits: CacheLimits {
                max_size_gb: self.image_volume_cache_max_size_gb,
                max_count: self.image_volume_cache_max_count,
            },
            project_id: project_id.to_string(),
            user_id: user_id.to_string(),
        }))
    }
}

/// The internal project that owns Scoria's own volumes (the cache's).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct InternalTenantOptions {
    pub cinder_internal_tenant_project_id: Option<String>,
    pub cinder_internal_tenant_user_id: Option<String>,
}

impl Options for InternalTenantOptions {
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::same_as_cinder(
            "cinder_internal_tenant_project_id",
            "",
            "Project that owns the volumes Scoria makes for itself (the image-volume cache).",
        ),
        OptionDoc::same_as_cinder(
            "cinder_internal_tenant_user_id",
            "",
            "User recorded on those volumes.",
        ),
    ];
}

impl InternalTenantOptions {
    /// `(project, user)` when both are set.
    pub fn internal(&self) -> Option<(&str, &str)> {
        self.cinder_internal_tenant_project_id
            .as_deref()
            .zip(self.cinder_internal_tenant_user_id.as_deref())
    }
}

/// `image_volume_cache_max_size_gb` and `_max_count`; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    pub max_size_gb: i64,
    pub max_count: i64,
}

impl CacheLimits {
    fn exceeded(&self, count: i64, size: i64) -> bool {
        (self.max_count > 0 && count > self.max_count)
            || (self.max_size_gb > 0 && size > self.max_size_gb)
    }
}

/// The cache's locks: one per image being looked up or filled, and one
/// over clones and evictions (taken after an image's, never before).
#[derive(Default)]
pub struct CacheLocks {
    images: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    entries: tokio::sync::Mutex<()>,
}

impl CacheLocks {
    fn image(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.images.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(id.to_string()).or_default().clone()
    }
}

impl VolumeManager {
    /// Makes `vol` (in `creating`, placed on `host`) a clone of the cached
    /// volume of `image`, filling the cache first when it has none. The
    /// outer error is the database's.
    pub(crate) async fn clone_from_cache(
        &self,
        ctx: &RequestContext,
        vol: &Volume,
        host: &Host,
        image: &Image,
        cache: &CacheSettings,
    ) -> Result<std::result::Result<Option<String>, ImageFailure>> {
        let image_lock = self.cache_locks.image(&image.id);
        let _image = image_lock.lock().await;
        let entry = match self.fresh_entry(image).await? {
            Some(e) => e,
            None => match self.fill_cache(ctx, vol, host, image, cache).await? {
                Ok(e) => e,
                Err(why) => return Ok(Err(why)),
            },
        };
        let _entries = self.cache_locks.entries.lock().await;
        let Some(source) = present(self.db.get_volume(&entry.volume_id).await)? else {
            self.db.delete_cache_entry(&entry.id).await?;
            return Ok(Err(
                "the cached image volume vanished; create the volume again"
                    .to_string()
                    .into(),
            ));
        };
        let spec = self.volume_spec(vol).await?;
        let source_spec = self.volume_spec(&source).await?;
        match self.driver.create_cloned_volume(&spec, &source_spec).await {
            Ok(update) => {
                self.db.touch_cache_entry(&entry.id).await?;
                tracing::info!(volume = %vol.id, image = %image.id, cached = %source.id, "volume cloned from the image cache");
                Ok(Ok(update.applied(spec).provider_location))
            }
            Err(e) => Ok(Err(
                format!("cloning the cached image volume failed: {e}").into()
            )),
        }
    }

    /// This backend's entry of `image` if it is current; a stale or broken
    /// one is dropped.
    async fn fresh_entry(&self, image: &Image) -> Result<Option<CacheEntry>> {
        let backend = self.cfg.backend.as_str();
        let Some(entry) = self.db.cache_entry(backend, &image.id).await? else {
            return Ok(None);
        };
        let volume_ok = matches!(
            present(self.db.get_volume(&entry.volume_id).await)?,
            Some(v) if v.status == VolumeStatus::Available
        );
        if volume_ok && entry.image_updated_at == image.updated_at {
            return Ok(Some(entry));
        }
        tracing::info!(image = %image.id, cached = %entry.volume_id, "dropping a stale image cache entry");
        let _entries = self.cache_locks.entries.lock().await;
        self.drop_entry(&entry).await?;
        Ok(None)
    }

    /// Makes a cached volume of `image` on `host`'s pool and records it.
    async fn fill_cache(
        &self,
        ctx: &RequestContext,
        template: &Volume,
        host: &Host,
        image: &Image,
        cache: &CacheSettings,
    ) -> Result<std::result::Result<CacheEntry, ImageFailure>> {
        let size = (image.disk_bytes().div_ceil(GIB) as i64).max(1);
        let cached = Volume {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: cache.project_id.clone(),
            user_id: cache.user_id.clone(),
            name: Some(format!("image-{}", image.id)),
            description: None,
            size,
            status: VolumeStatus::Creating,
            previous_status: None,
            host: Some(host.clone()),
            snapshot_id: None,
            source_volid: None,
            bootable: false,
            attachments: Vec::new(),
            provider_location: None,
            admin_metadata: [(admin_keys::IMAGE_CACHE.to_string(), image.id.clone())].into(),
            metadata: Default::default(),
            created_at: time::now(),
            updated_at: None,
            ..template.clone()
        };
        self.db.insert_volume(&cached).await?;
        tracing::info!(image = %image.id, cached = %cached.id, "filling the image cache");
        let spec = self.volume_spec(&cached).await?;
        let made = match self.driver.create_volume(&spec).await {
            Ok(update) => update.applied(spec),
            Err(e) => {
                self.db.delete_volume(&cached.id).await?;
                return Ok(Err(format!(
                    "the backend could not make the image cache volume: {e}"
                )
                .into()));
            }
        };
        let mut cached = cached;
        cached.provider_location = made.provider_location;
        let outcome = self.fill_volume(ctx, &cached, image).await;
        if let Err(why) = outcome {
            self.remove_volume(&cached).await?;
            return Ok(Err(why));
        }
        self.db
            .replace_volume_image_metadata(&cached.id, &image.volume_metadata())
            .await?;
        let done = VolumeChanges {
            status: volume::CREATE.to.status(),
            bootable: Some(true),
            provider_location: Some(cached.provider_location.clone()),
            ..Default::default()
        };
        let creating = VolumeGuard::status_in(volume::CREATE.in_progress());
        self.db.update_volume(&cached.id, &done, creating).await?;
        let entry = CacheEntry {
            id: uuid::Uuid::new_v4().to_string(),
            host: self.cfg.backend.as_str().to_string(),
            image_id: image.id.clone(),
            image_updated_at: image.updated_at.clone(),
            volume_id: cached.id.clone(),
            size,
            last_used: time::now(),
        };
        self.db.insert_cache_entry(&entry).await?;
        let _entries = self.cache_locks.entries.lock().await;
        self.evict(&entry.id, cache).await?;
        Ok(Ok(entry))
    }

    /// Drops least recently used entries (never `keep`) until the cache is
    /// within its limits. The caller holds the entries lock.
    async fn evict(&self, keep: &str, cache: &CacheSettings) -> Result<()> {
        let entries = self.db.cache_entries(self.cfg.backend.as_str()).await?;
        let mut count = entries.len() as i64;
        let mut size: i64 = entries.iter().map(|e| e.size).sum();
        for e in entries.iter().filter(|e| e.id != keep) {
            if !cache.limits.exceeded(count, size) {
                break;
            }
            tracing::info!(image = %e.image_id, cached = %e.volume_id, "evicting from the image cache");
            self.drop_entry(e).await?;
            count -= 1;
            size -= e.size;
        }
        Ok(())
    }

    /// Removes an entry and its volume.
    async fn drop_entry(&self, e: &CacheEntry) -> Result<()> {
        self.db.delete_cache_entry(&e.id).await?;
        if let Some(v) = present(self.db.get_volume(&e.volume_id).await)? {
            self.remove_volume(&v).await?;
        }
        Ok(())
    }

    /// Deletes a cache volume from the backend, then its row.
    pub(crate) async fn remove_volume(&self, v: &Volume) -> Result<()> {
        let spec = self.volume_spec(v).await?;
        if let Err(e) = self.driver.delete_volume(&spec).await {
            tracing::error!(volume = %v.id, error = %e, "could not delete an image cache volume; it is left in error");
            self.db
                .update_volume(
                    &v.id,
                    &VolumeChanges::status(VolumeStatus::Error),
                    VolumeGuard::default(),
                )
                .await?;
            return Ok(());
        }
        self.db.delete_volume(&v.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let l = CacheLimits {
            max_size_gb: 10,
            max_count: 2,
        };
        assert!(!l.exceeded(2, 10));
        assert!(l.exceeded(3, 3));
        assert!(l.exceeded(1, 11));
        let none = CacheLimits {
            max_size_gb: 0,
            max_count: 0,
        };
        assert!(!none.exceeded(1000, 100000));
    }
}
