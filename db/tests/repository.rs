//! The repository's behaviour, run against SQLite and against PostgreSQL
//! (`postgres://postgres@127.0.0.1:5432`, a fresh database per run; the test
//! fails if PostgreSQL is unreachable — the test script starts it).

use std::future::Future;

use scoria_core::model::{Attachment, Metadata, Snapshot, Volume, VolumeType};
use scoria_core::status::{AttachStatus, SnapshotStatus, VolumeStatus};
use scoria_core::transitions::volume;
use scoria_core::{time, Error};
use scoria_db::{
    AttachGate, AttachmentChanges, Db, MetaKind, Page, SortDir, VolumeChanges, VolumeGuard,
    VolumeQuery,
};

fn volume(project: &str, name: &str, size: i64) -> Volume {
    Volume {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: project.into(),
        user_id: "u".into(),
        name: Some(name.into()),
        description: None,
        size,
        status: VolumeStatus::Available,
        previous_status: None,
        attach_status: AttachStatus::Detached,
        host: Some("h@b#p".parse().unwrap()),
        availability_zone: "nova".into(),
        volume_type_id: None,
        volume_type_name: None,
        snapshot_id: None,
        source_volid: None,
        bootable: false,
        multiattach: false,
        shared_targets: false,
        service_uuid: None,
        attachments: Vec::new(),
        provider_location: None,
        admin_metadata: Metadata::new(),
        metadata: Metadata::from([("tier".to_string(), name.to_string())]),
        image_metadata: Metadata::new(),
        created_at: time::now(),
        updated_at: None,
    }
}

async fn sqlite() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (db, dir)
}

async fn postgres() -> Db {
    let admin = "postgres://postgres@127.0.0.1:5432/postgres";
    let name = format!("scoria_test_{}", uuid::Uuid::new_v4().simple());
    let server = Db::connect(admin)
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432");
    server
        .execute_raw(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let db = Db::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db
}

async fn on_both<F, Fut>(check: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let (db, _dir) = sqlite().await;
    check(db).await;
    check(postgres().await).await;
}

#[tokio::test]
async fn compare_and_set_has_one_winner() {
    on_both(|db| async move {
        let mut v = volume("p", "a", 1);
        v.status = VolumeStatus::Creating;
        db.insert_volume(&v).await.unwrap();
        let mut tries = Vec::new();
        for _ in 0..8 {
            let db = db.clone();
            let id = v.id.clone();
            tries.push(tokio::spawn(async move {
                let guard = VolumeGuard::status_in(&[VolumeStatus::Creating]);
                db.update_volume(&id, &VolumeChanges::status(VolumeStatus::Available), guard)
                    .await
                    .unwrap()
            }));
        }
        let mut wins = 0;
        for t in tries {
            wins += t.await.unwrap() as usize;
        }
        assert_eq!(wins, 1);
        assert_eq!(
            db.get_volume(&v.id).await.unwrap().status,
            VolumeStatus::Available
        );
    })
    .await;
}

#[tokio::test]
async fn delete_guard_respects_snapshots() {
    on_both(|db| async move {
        let v = volume("p", "a", 1);
        db.insert_volume(&v).await.unwrap();
        let snap = Snapshot {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: "p".into(),
            user_id: "u".into(),
            volume_id: v.id.clone(),
            name: None,
            description: None,
            size: 1,
            status: SnapshotStatus::Available,
            progress: "100%".into(),
            provider_location: None,
            metadata: Metadata::new(),
            created_at: time::now(),
            updated_at: None,
        };
        assert!(db
            .insert_snapshot(&snap, &[VolumeStatus::Available])
            .await
            .unwrap());
        let deletable = volume::DELETE.from.statuses();
        let guard = VolumeGuard {
            statuses: Some(&deletable),
            no_snapshots: true,
            host: None,
        };
        assert!(!db
            .update_volume(&v.id, &VolumeChanges::status(VolumeStatus::Deleting), guard)
            .await
            .unwrap());
        db.delete_snapshot(&snap.id).await.unwrap();
        assert!(db
            .update_volume(&v.id, &VolumeChanges::status(VolumeStatus::Deleting), guard)
            .await
            .unwrap());
        // A snapshot of a volume that is no longer available is refused.
        let again = Snapshot {
            id: uuid::Uuid::new_v4().to_string(),
            ..snap
        };
        assert!(!db
            .insert_snapshot(&again, &[VolumeStatus::Available])
            .await
            .unwrap());
    })
    .await;
}

fn snapshot_of(v: &Volume) -> Snapshot {
    Snapshot {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: v.project_id.clone(),
        user_id: "u".into(),
        volume_id: v.id.clone(),
        name: None,
        description: None,
        size: v.size,
        status: SnapshotStatus::Available,
        progress: "100%".into(),
        provider_location: None,
        metadata: Metadata::new(),
        created_at: time::now(),
        updated_at: None,
    }
}

#[tokio::test]
async fn image_metadata_is_kept_copied_filtered_and_removed() {
    on_both(|db| async move {
        let image = Metadata::from([
            ("image_id".to_string(), "i-1".to_string()),
            ("os_distro".to_string(), "cirros".to_string()),
        ]);
        let src = volume("p", "src", 1);
        db.insert_volume(&src).await.unwrap();
        assert!(db
            .get_volume(&src.id)
            .await
            .unwrap()
            .image_metadata
            .is_empty());
        db.replace_volume_image_metadata(&src.id, &image)
            .await
            .unwrap();
        // Read with the volume, alone, and in a listing.
        assert_eq!(db.get_volume(&src.id).await.unwrap().image_metadata, image);
        assert_eq!(db.volume_image_metadata(&src.id).await.unwrap(), image);
        // Merge, then unset one key.
        let more = Metadata::from([
            ("os_distro".to_string(), "debian".to_string()),
            ("hw_disk_bus".to_string(), "scsi".to_string()),
        ]);
        let all = db.set_volume_image_metadata(&src.id, &more).await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all["os_distro"], "debian");
        assert!(db
            .unset_volume_image_metadata(&src.id, "hw_disk_bus")
            .await
            .unwrap());
        assert!(!db
            .unset_volume_image_metadata(&src.id, "hw_disk_bus")
            .await
            .unwrap());
        let kept = db.volume_image_metadata(&src.id).await.unwrap();
        // Replacing drops keys that are not given.
        db.replace_volume_image_metadata(&src.id, &image)
            .await
            .unwrap();
        db.set_volume_image_metadata(&src.id, &kept).await.unwrap();
        assert_eq!(db.volume_image_metadata(&src.id).await.unwrap(), kept);

        // A snapshot copies it; a volume from the snapshot and a clone get it.
        let snap = snapshot_of(&src);
        assert!(db
            .insert_snapshot(&snap, &[VolumeStatus::Available])
            .await
            .unwrap());
        assert_eq!(db.snapshot_image_metadata(&snap.id).await.unwrap(), kept);
        // Later changes of the volume do not reach the snapshot.
        db.set_volume_image_metadata(
            &src.id,
            &Metadata::from([("late".to_string(), "1".to_string())]),
        )
        .await
        .unwrap();
        let from_snap = Volume {
            snapshot_id: Some(snap.id.clone()),
            ..volume("p", "from-snap", 1)
        };
        let clone = Volume {
            source_volid: Some(src.id.clone()),
            ..volume("p", "clone", 1)
        };
        let plain = volume("p", "plain", 1);
        for v in [&from_snap, &clone, &plain] {
            db.insert_volume(v).await.unwrap();
        }
        assert_eq!(
            db.get_volume(&from_snap.id).await.unwrap().image_metadata,
            kept
        );
        let cloned = db.get_volume(&clone.id).await.unwrap().image_metadata;
        assert_eq!(cloned.get("late").map(String::as_str), Some("1"));
        assert_eq!(cloned.len(), kept.len() + 1);
        assert!(db
            .get_volume(&plain.id)
            .await
            .unwrap()
            .image_metadata
            .is_empty());

        // The glance_metadata filter: every pair must match.
        let q = |pairs: &[(&str, &str)]| VolumeQuery {
            project_id: Some("p".into()),
            glance_metadata: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let names = |vols: Vec<Volume>| {
            let mut n: Vec<String> = vols.into_iter().filter_map(|v| v.name).collect();
            n.sort();
            n
        };
        let found = db
            .list_volumes(&q(&[("os_distro", "debian")]))
            .await
            .unwrap();
        assert_eq!(names(found), ["clone", "from-snap", "src"]);
        let found = db
            .list_volumes(&q(&[("os_distro", "debian"), ("late", "1")]))
            .await
            .unwrap();
        assert_eq!(names(found), ["clone", "src"]);
        assert_eq!(db.count_volumes(&q(&[("late", "1")])).await.unwrap().0, 2);
        assert!(db
            .list_volumes(&q(&[("os_distro", "cirros")]))
            .await
            .unwrap()
            .is_empty());
        // A listing reads each volume's own image metadata.
        let listed = db.list_volumes(&q(&[])).await.unwrap();
        let of = |name: &str| {
            listed
                .iter()
                .find(|v| v.name.as_deref() == Some(name))
                .unwrap()
                .image_metadata
                .clone()
        };
        assert_eq!(of("from-snap"), kept);
        assert!(of("plain").is_empty());

        // Deleting removes it: a new row with the same id starts clean.
        db.delete_snapshot(&snap.id).await.unwrap();
        assert!(db
            .snapshot_image_metadata(&snap.id)
            .await
            .unwrap()
            .is_empty());
        db.delete_volume(&clone.id).await.unwrap();
        assert!(db
            .volume_image_metadata(&clone.id)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn listing_pages_and_filters() {
    on_both(|db| async move {
        let mut ids = Vec::new();
        for i in 0..7 {
            let v = volume("p", if i % 2 == 0 { "even" } else { "odd" }, i + 1);
            ids.push(v.id.clone());
            db.insert_volume(&v).await.unwrap();
        }
        db.insert_volume(&volume("other", "even", 1)).await.unwrap();
        let size_key = VolumeQuery::SORT_KEYS
            .iter()
            .find(|k| k.name == "size")
            .copied()
            .unwrap();
        let mut seen = Vec::new();
        let mut marker = None;
        loop {
            let q = VolumeQuery {
                project_id: Some("p".into()),
                page: Page {
                    sort: vec![(size_key, SortDir::Asc)],
                    limit: Some(3),
                    marker: marker.clone(),
                    offset: None,
                },
                ..Default::default()
            };
            let page = db.list_volumes(&q).await.unwrap();
            if page.is_empty() {
                break;
            }
            marker = page.last().map(|v| v.id.clone());
            seen.extend(page.into_iter().map(|v| v.size));
        }
        assert_eq!(seen, vec![1, 2, 3, 4, 5, 6, 7]);
        let q = VolumeQuery {
            project_id: Some("p".into()),
            metadata: vec![("tier".into(), "odd".into())],
            ..Default::default()
        };
        let odd = db.list_volumes(&q).await.unwrap();
        assert_eq!(odd.len(), 3);
        assert!(odd
            .iter()
            .all(|v| v.metadata.get("tier").map(String::as_str) == Some("odd")));
        assert_eq!(db.count_volumes(&q).await.unwrap(), (3, 2 + 4 + 6));
        let bad = VolumeQuery {
            page: Page {
                marker: Some("nope".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(matches!(
            db.list_volumes(&bad).await,
            Err(Error::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn types_are_unique_and_protected_while_used() {
    on_both(|db| async move {
        db.ensure_default_type().await.unwrap();
        db.ensure_default_type().await.unwrap();
        let t = VolumeType {
            id: uuid::Uuid::new_v4().to_string(),
            name: "gold".into(),
            description: None,
            is_public: true,
            extra_specs: Metadata::from([("volume_backend_name".to_string(), "file".to_string())]),
            created_at: time::now(),
            updated_at: None,
        };
        db.insert_volume_type(&t).await.unwrap();
        let dup = VolumeType {
            id: uuid::Uuid::new_v4().to_string(),
            ..t.clone()
        };
        assert!(matches!(
            db.insert_volume_type(&dup).await,
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            db.find_volume_type("gold").await.unwrap().extra_specs,
            t.extra_specs
        );
        let mut v = volume("p", "a", 1);
        v.volume_type_id = Some(t.id.clone());
        db.insert_volume(&v).await.unwrap();
        assert!(!db.delete_volume_type(&t.id).await.unwrap());
        db.delete_volume(&v.id).await.unwrap();
        assert!(db.delete_volume_type(&t.id).await.unwrap());
        assert!(db
            .get_metadata(MetaKind::ExtraSpecs, &t.id)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(db.list_volume_types(false).await.unwrap().len(), 1);
    })
    .await;
}

fn attachment(v: &Volume, instance: &str) -> Attachment {
    Attachment::new(v, AttachStatus::Reserved, Some(instance.into()))
}

const SINGLE: AttachGate<'static> = AttachGate {
    statuses: &[VolumeStatus::Available],
    same_instance_statuses: &[VolumeStatus::InUse, VolumeStatus::Reserved],
};

#[tokio::test]
async fn concurrent_reservations_of_a_single_attach_volume_have_one_winner() {
    on_both(|db| async move {
        let v = volume("p", "a", 1);
        db.insert_volume(&v).await.unwrap();
        let mut tries = Vec::new();
        for i in 0..8 {
            let (db, a) = (db.clone(), attachment(&v, &format!("server-{i}")));
            tries.push(tokio::spawn(async move {
                db.create_attachment(&a, Some(SINGLE)).await.unwrap()
            }));
        }
        let mut wins = 0;
        for t in tries {
            wins += t.await.unwrap() as usize;
        }
        assert_eq!(wins, 1);
        assert_eq!(db.attachments_of_volume(&v.id).await.unwrap().len(), 1);
        let now = db.get_volume(&v.id).await.unwrap();
        assert_eq!(now.status, VolumeStatus::Reserved);
        assert_eq!(now.attach_status, AttachStatus::Reserved);
    })
    .await;
}

#[tokio::test]
async fn volume_status_follows_its_attachments() {
    on_both(|db| async move {
        let v = volume("p", "a", 1);
        db.insert_volume(&v).await.unwrap();
        let first = attachment(&v, "server-1");
        assert!(db.create_attachment(&first, Some(SINGLE)).await.unwrap());
        // The same server may attach again while it moves between hosts.
        let again = attachment(&v, "server-1");
        assert!(db.create_attachment(&again, Some(SINGLE)).await.unwrap());
        assert!(!db
            .create_attachment(&attachment(&v, "server-2"), Some(SINGLE))
            .await
            .unwrap());
        let attached = AttachmentChanges {
            attach_status: Some(AttachStatus::Attached),
            attached_at: Some(Some(time::now())),
            ..Default::default()
        };
        assert!(db
            .update_attachment(&first.id, &attached, Some(&[AttachStatus::Reserved]))
            .await
            .unwrap());
        let now = db.get_volume(&v.id).await.unwrap();
        assert_eq!(
            (now.status, now.attach_status),
            (VolumeStatus::InUse, AttachStatus::Attached)
        );
        assert_eq!(now.attachments.len(), 1);
        assert_eq!(now.attachments[0].attachment_id, first.id);
        assert_eq!(
            now.attachments[0].instance_uuid.as_deref(),
            Some("server-1")
        );
        // A guarded update from the wrong status changes nothing.
        assert!(!db
            .update_attachment(&first.id, &attached, Some(&[AttachStatus::Reserved]))
            .await
            .unwrap());
        assert!(db.delete_attachment(&first.id, None).await.unwrap());
        assert_eq!(
            db.get_volume(&v.id).await.unwrap().status,
            VolumeStatus::Reserved
        );
        assert!(db.delete_attachment(&again.id, None).await.unwrap());
        assert!(!db.delete_attachment(&again.id, None).await.unwrap());
        let now = db.get_volume(&v.id).await.unwrap();
        assert_eq!(
            (now.status, now.attach_status),
            (VolumeStatus::Available, AttachStatus::Detached)
        );
        assert!(now.attachments.is_empty());
        // Statuses that attachments do not decide are left alone.
        db.update_volume(
            &v.id,
            &VolumeChanges::status(VolumeStatus::Extending),
            VolumeGuard::default(),
        )
        .await
        .unwrap();
        db.recompute_attach_status(&v.id).await.unwrap();
        assert_eq!(
            db.get_volume(&v.id).await.unwrap().status,
            VolumeStatus::Extending
        );
    })
    .await;
}

#[tokio::test]
async fn exported_attachments_are_found_per_backend_and_go_with_their_volume() {
    on_both(|db| async move {
        let v = volume("p", "a", 1);
        db.insert_volume(&v).await.unwrap();
        let mut a = attachment(&v, "server-1");
        a.connector = Some(serde_json::Map::from_iter([(
            "host".to_string(),
            "h1".into(),
        )]));
        a.connection_info = Some(scoria_core::model::ConnectionInfo {
            driver_volume_type: "local".into(),
            data: Default::default(),
        });
        a.auth = Some(scoria_core::model::Chap {
            username: "u".into(),
            password: "p".into(),
        });
        db.create_attachment(&a, None).await.unwrap();
        let found = db.exported_attachments("h@b").await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0], a);
        assert!(db.exported_attachments("h@other").await.unwrap().is_empty());
        db.delete_volume(&v.id).await.unwrap();
        assert!(db.exported_attachments("h@b").await.unwrap().is_empty());
    })
    .await;
}
