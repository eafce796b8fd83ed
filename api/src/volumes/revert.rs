//! The `revert` volume action (3.40): put a volume's data back to its latest
//! snapshot. The volume goes `reverting` and the snapshot `restoring` until
//! the volume manager is done.

use scoria_core::model::{Snapshot, Volume};
use scoria_core::rpc::{volume_topic, VolumeRequest};
use scoria_core::transitions::{snapshot, volume};
use scoria_core::Error;
use scoria_db::{Page, SnapshotChanges, SnapshotQuery, SortDir, VolumeChanges, VolumeGuard};
use serde_json::Value;

use crate::http::context::Ctx;
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::validate;
use crate::volumes::crud::visible_volume;
use crate::ApiState;

/// The first microversion with the action.
pub(crate) const REVERT_VERSION: u32 = 40;

fn conflict(msg: String) -> ApiError {
    ApiError(Error::Conflict(msg))
}

/// The snapshot id of the action's argument `{"snapshot_id": …}`.
pub(crate) fn snapshot_id(arg: &Value) -> ApiResult<String> {
    let m = validate::action_args("revert", arg)?;
    validate::only_keys(m, &["snapshot_id"])?;
    validate::opt_id(m, "snapshot_id")?
        .ok_or_else(|| bad_request("Invalid input received: revert needs 'snapshot_id'."))
}

/// The volume's newest snapshot, whatever its status.
async fn latest_snapshot(state: &ApiState, volume_id: &str) -> ApiResult<Option<Snapshot>> {
    let created_at = SnapshotQuery::SORT_KEYS
        .iter()
        .find(|k| k.name == "created_at")
        .copied()
        .expect("created_at is a snapshot sort key");
    let q = SnapshotQuery {
        volume_id: Some(volume_id.to_string()),
        page: Page {
            sort: vec![(created_at, SortDir::Desc)],
            limit: Some(1),
            ..Default::default()
        },
        ..Default::default()
    };
    Ok(state.db.list_snapshots(&q).await?.into_iter().next())
}

/// Fails with 400 unless `wanted` is the latest snapshot of volume `id` and
/// of its `size`.
fn check_latest(
    id: &str,
    size: i64,
    latest: Option<Snapshot>,
    wanted: &str,
) -> ApiResult<Snapshot> {
    let snap = latest.ok_or_else(|| {
        bad_request(format!(
            "Invalid input received: Volume {id} has no snapshots."
        ))
    })?;
    if snap.id != wanted {
        return Err(bad_request(format!(
            "Invalid input received: Snapshot {wanted} is not the latest snapshot of volume {id}; only the latest ({}) can be reverted to.",
            snap.id
        )));
    }
    if snap.size != size {
        return Err(bad_request(format!(
            "Invalid input received: Volume {id} is {size} GiB and its latest snapshot {wanted} {} GiB; a volume can only be reverted to a snapshot of its size.",
            snap.size
        )));
    }
    Ok(snap)
}

/// Moves the volume to `reverting` and the snapshot to `restoring` (409 when
/// either is not `available`, changing nothing).
async fn claim(state: &ApiState, vol: &Volume, snap: &Snapshot) -> ApiResult<()> {
    let (revert, restore) = (&volume::REVERT, &snapshot::RESTORE);
    let reverting = VolumeChanges {
        status: revert.interim,
        ..Default::default()
    };
    let available = revert.from.statuses();
    if !state
        .db
        .update_volume(&vol.id, &reverting, VolumeGuard::status_in(&available))
        .await?
    {
        let now = state.db.get_volume(&vol.id).await?;
        return Err(conflict(format!(
            "Invalid volume: Volume {} status must be {} to revert it, but it is '{}'.",
            vol.id,
            revert.from.quoted(),
            now.status
        )));
    }
    let restoring = SnapshotChanges {
        status: restore.interim,
        ..Default::default()
    };
    let free = restore.from.guard();
    if !state
        .db
        .update_snapshot(&snap.id, &restoring, free.as_deref())
        .await?
    {
        release(state, vol, snap).await?;
        let now = state.db.get_snapshot(&snap.id).await?;
        return Err(conflict(format!(
            "Invalid snapshot: Snapshot {} status must be {} to revert to it, but it is '{}'.",
            snap.id,
            restore.from.quoted(),
            now.status
        )));
    }
    Ok(())
}

/// Undoes [`claim`]: the revert did not start, so the volume's data is
/// untouched.
async fn release(state: &ApiState, vol: &Volume, snap: &Snapshot) -> ApiResult<()> {
    let (revert, restore) = (&volume::REVERT, &snapshot::RESTORE);
    let back = VolumeChanges {
        status: revert.to.status(),
        ..Default::default()
    };
    let reverting = VolumeGuard::status_in(revert.in_progress());
    state.db.update_volume(&vol.id, &back, reverting).await?;
    let back = SnapshotChanges {
        status: restore.failed,
        ..Default::default()
    };
    state
        .db
        .update_snapshot(&snap.id, &back, Some(restore.in_progress()))
        .await?;
    Ok(())
}

/// `{"revert": {"snapshot_id": wanted}}`: checks the request and casts the
/// revert to the volume's backend.
pub(crate) async fn revert(
    state: &ApiState,
    ctx: &Ctx,
    volume_id: &str,
    wanted: String,
) -> ApiResult<()> {
    let vol = visible_volume(state, ctx, volume_id).await?;
    let latest = latest_snapshot(state, &vol.id).await?;
    let snap = check_latest(&vol.id, vol.size, latest, &wanted)?;
    let backend = vol.backend().ok_or_else(|| {
        conflict(format!(
            "Invalid volume: Volume {volume_id} is not on a backend yet."
        ))
    })?;
    claim(state, &vol, &snap).await?;
    let req = VolumeRequest::RevertToSnapshot {
        volume_id: vol.id.clone(),
        snapshot_id: snap.id.clone(),
    };
    if let Err(e) = state.bus.cast(&volume_topic(backend), &ctx.rc, &req).await {
        release(state, &vol, &snap).await?;
        return Err(e.into());
    }
    tracing::info!(volume = %vol.id, snapshot = %snap.id, "revert accepted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use scoria_core::model::Snapshot;
    use scoria_core::status::SnapshotStatus;

    use super::*;

    fn snapshot(id: &str, size: i64) -> Snapshot {
        Snapshot {
            id: id.into(),
            project_id: "p".into(),
            user_id: "u".into(),
            volume_id: "v".into(),
            name: None,
            description: None,
            size,
            status: SnapshotStatus::Available,
            progress: "100%".into(),
            provider_location: None,
            metadata: Default::default(),
            created_at: "2026-01-01T00:00:00.000000".into(),
            updated_at: None,
        }
    }

    fn message(r: ApiResult<Snapshot>) -> String {
        match r {
            Err(ApiError(Error::BadRequest(m))) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn argument_needs_exactly_a_snapshot_id() {
        assert_eq!(
            snapshot_id(&serde_json::json!({"snapshot_id": "s"})).unwrap(),
            "s"
        );
        assert!(snapshot_id(&serde_json::json!({})).is_err());
        assert!(snapshot_id(&serde_json::json!({"snapshot_id": 5})).is_err());
        assert!(snapshot_id(&serde_json::json!({"snapshot_id": "s", "x": 1})).is_err());
        assert!(snapshot_id(&serde_json::json!("s")).is_err());
    }

    #[test]
    fn only_the_latest_snapshot_of_the_same_size() {
        assert!(message(check_latest("v", 1, None, "s1")).contains("has no snapshots"));
        let latest = || Some(snapshot("s2", 1));
        assert!(message(check_latest("v", 1, latest(), "s1")).contains("not the latest"));
        assert!(message(check_latest("v", 2, latest(), "s2")).contains("of its size"));
        assert_eq!(check_latest("v", 1, latest(), "s2").unwrap().id, "s2");
    }
}
