//! Backup and restore (`gridlink-server backup` / `restore`, on SQLite): a backup taken while a
//! phone syncs restores to a server that serves what it held, and the phones that synced
//! after the backup push again what the restored server lost: their own cases and events,
//! their photos, and nothing either phone holds is lost. A restore never writes over an
//! installation, and a file that is not a backup is refused.

use crate::common::{Phone, TempDir, TestServer};
use crate::photos::{camera_bytes, report_with_photo, upload_options};
use gridlink_core::case::{EventKind, Status};
use gridlink_server::store::SettingsAudit;
use gridlink_server::store::backup::{self, BackupError};

const GRID: &str = "320509001001-01";
const T0: i64 = 1_795_910_400_000;

#[test]
fn a_backup_under_load_restores_and_the_phones_push_again_what_the_server_lost() {
    let mut server = TestServer::start_sqlite();
    let inspector = server.phone("insp-0001");
    let chief = server.phone("chief-0001");
    let upload = |phone: &crate::common::Phone| {
        phone
            .store
            .upload_photos(&phone.transport, &upload_options(64 << 10), &())
            .unwrap()
    };
    let (before, photo_before) = report_with_photo(&inspector.store, &camera_bytes(11));
    inspector.sync();
    upload(&inspector);
    chief.sync();

    // The backup is written while the inspector keeps reporting and syncing.
    let dir = TempDir::new();
    let file = dir.path().join("gridlink.backup");
    let during = reporting_while(&inspector, || {
        let copied = backup::backup(server.data.path(), &file).unwrap();
        assert!(copied.docs >= 1 && copied.blobs >= 2, "{copied:?}");
    });

    // Work the backup does not hold, acknowledged: a case with a photo, accepted by the chief
    // (whose phone now holds the inspector's case too), and a comment on the first case.
    let (after, photo_after) = report_with_photo(&inspector.store, &camera_bytes(12));
    inspector.sync();
    upload(&inspector);
    let seen = work_the_copy_lacks(&inspector, &chief, &before, &after, &during);

    // The machine is lost and the backup restored on another.
    server.restore_from(&file);
    assert!(
        server.doc(&before).unwrap().case().unwrap().history.len() < seen[0].1,
        "the restored server lacks the comment"
    );
    assert!(server.doc(&after).is_none(), "…and the later case");
    assert_eq!(
        server.state.blobs().read(&photo_before).unwrap(),
        inspector.store.photo_bytes(&photo_before, false).unwrap()
    );

    for _ in 0..2 {
        inspector.sync();
        chief.sync();
    }
    upload(&inspector);
    assert_pushed_again(&server, &inspector, &chief, &seen, &after);
    assert_eq!(
        server.state.blobs().read(&photo_after).unwrap(),
        inspector.store.photo_bytes(&photo_after, false).unwrap(),
        "the photo uploaded after the backup was uploaded again"
    );
}

#[test]
fn a_restore_writes_into_an_empty_directory_only_and_refuses_what_is_not_a_backup() {
    let server = TestServer::start_sqlite();
    let dir = TempDir::new();
    let file = dir.path().join("gridlink.backup");
    backup::backup(server.data.path(), &file).unwrap();
    // Over a live installation: refused, nothing written.
    assert!(matches!(
        backup::restore(&file, server.data.path()),
        Err(BackupError::TargetInUse(_))
    ));
    // The live database itself is not a backup.
    let target = dir.path().join("restored");
    assert!(matches!(
        backup::restore(&server.data.path().join("gridlink.sqlite"), &target),
        Err(BackupError::NotABackup(..))
    ));
    // Nor is a truncated copy.
    let bytes = std::fs::read(&file).unwrap();
    let truncated = dir.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(backup::restore(&truncated, &target).is_err());
    assert!(!target.join("gridlink.sqlite").exists());
    // A directory with no installation has nothing to back up.
    assert!(matches!(
        backup::backup(&dir.path().join("nothing"), &dir.path().join("x.backup")),
        Err(BackupError::NoInstallation(_))
    ));
    // The whole file restores, with a history of its own.
    backup::restore(&file, &target).unwrap();
    let restored = gridlink_server::store::SqliteStore::open(&target).unwrap();
    use gridlink_server::store::SettingsAudit;
    let history = |store: &dyn SettingsAudit| {
        store
            .setting(gridlink_server::store::HISTORY_SETTING)
            .unwrap()
            .unwrap()
    };
    assert_ne!(history(&restored), history(&**server.state.store()));
}

/// The PostgreSQL procedure of the README: `pg_dump` while phones sync, `pg_restore` into a
/// new database, `gridlink-server restored` (a new history id), serve over it; the phones push
/// again what the dump lacked.
#[test]
fn a_postgresql_dump_under_load_restores_and_the_phones_push_again_what_it_lost() {
    let Some(postgres) = crate::common::postgres_for_test() else {
        return;
    };
    let bindir = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .unwrap();
    let bindir = std::path::PathBuf::from(String::from_utf8(bindir.stdout).unwrap().trim());
    let mut server = TestServer::start_on_postgres(&postgres);
    let schema = crate::common::schema_name(server.data.path());
    let inspector = server.phone("insp-0001");
    let chief = server.phone("chief-0001");
    let before = inspector.report(GRID, "备份前的案件", T0);
    inspector.sync();
    chief.sync();

    let dir = TempDir::new();
    let dump = dir.path().join("gridlink.dump");
    let during = reporting_while(&inspector, || {
        let status = std::process::Command::new(bindir.join("pg_dump"))
            .args(["-Fc", "-n", &schema, "-f"])
            .arg(&dump)
            .arg("-d")
            .arg(&postgres)
            .status()
            .unwrap();
        assert!(status.success(), "pg_dump");
    });

    // Acknowledged after the dump: a new case, accepted by the chief, and a comment.
    let after = inspector.report(GRID, "备份后的案件", T0 + 100);
    inspector.sync();
    let seen = work_the_copy_lacks(&inspector, &chief, &before, &after, &during);

    // The database is lost; the dump is restored into a new one.
    let database = format!("r_{schema}");
    postgres::Client::connect(&postgres, postgres::NoTls)
        .unwrap()
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .unwrap();
    let target = format!("{postgres} dbname={database}");
    let status = std::process::Command::new(bindir.join("pg_restore"))
        .arg("-d")
        .arg(&target)
        .arg(&dump)
        .status()
        .unwrap();
    assert!(status.success(), "pg_restore");
    let url = format!("{target} options='-c search_path={schema}'");
    // `gridlink-server restored`: a new history id.
    let restored = gridlink_server::store::PgStore::open(&url).unwrap();
    let old = restored
        .setting(gridlink_server::store::HISTORY_SETTING)
        .unwrap()
        .unwrap();
    let new = backup::start_new_history(&restored, "test").unwrap();
    assert_ne!(new.as_bytes(), &old[..]);
    drop(restored);
    server.serve_over_postgres(url);
    assert!(
        server.doc(&after).is_none(),
        "the dump lacks the later case"
    );

    for _ in 0..2 {
        inspector.sync();
        chief.sync();
    }
    assert_pushed_again(&server, &inspector, &chief, &seen, &after);
}

/// Eight cases the inspector reports and syncs while `copy` runs (a backup under load); their
/// ids.
fn reporting_while(inspector: &Phone, copy: impl FnOnce()) -> Vec<String> {
    std::thread::scope(|s| {
        let load = s.spawn(|| {
            (0..8)
                .map(|i| {
                    let id = inspector.report(GRID, &format!("巡查发现 {i}"), T0 + i);
                    inspector.sync();
                    id
                })
                .collect::<Vec<_>>()
        });
        copy();
        load.join().unwrap()
    })
}

/// Work acknowledged after the copy was taken: the chief (whose phone now holds `after` too)
/// accepts `after`, and the inspector comments on `before`. Returns what the inspector holds
/// of every case: its id and how many events.
fn work_the_copy_lacks(
    inspector: &Phone,
    chief: &Phone,
    before: &str,
    after: &str,
    during: &[String],
) -> Vec<(String, usize)> {
    chief.sync();
    chief
        .act(
            after,
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            T0 + 200,
        )
        .unwrap();
    chief.sync();
    inspector.comment(before, "已通知物业", T0 + 300);
    inspector.sync();
    [before, after]
        .into_iter()
        .chain(during.iter().map(String::as_str))
        .map(|id| {
            (
                id.to_owned(),
                inspector.store.case(id).unwrap().history.len(),
            )
        })
        .collect()
}

/// After the restore and the phones' syncs: every case is on the server with the events the
/// inspector held, the chief's acceptance is back, and neither phone has unsent work.
fn assert_pushed_again(
    server: &TestServer,
    inspector: &Phone,
    chief: &Phone,
    seen: &[(String, usize)],
    after: &str,
) {
    for (id, events) in seen {
        let case = server
            .doc(id)
            .unwrap_or_else(|| panic!("{id} lost"))
            .case()
            .unwrap();
        assert_eq!(case.history.len(), *events, "{id}");
        assert_eq!(inspector.store.case(id).unwrap().history.len(), *events);
    }
    let accepted = server.doc(after).unwrap().case().unwrap();
    assert_eq!(accepted.state.status, Status::Accepted);
    assert_eq!(
        chief.store.case(after).unwrap().state.status,
        Status::Accepted
    );
    assert!(inspector.store.unacknowledged().unwrap().is_empty());
    assert!(chief.store.unacknowledged().unwrap().is_empty());
}
