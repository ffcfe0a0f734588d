//! The restore drill (issue 22, point 3), through the scripts an operator runs
//! (`deploy/backup/backup.sh`, `restore.sh`): back up a running installation with attachments,
//! lose its database and objects, restore into a new database and data folder, and find every
//! table with the same number of rows and every attachment with its SHA-256.
//!
//! A Rust test rather than a shell script beside `.ci/run`: seeding files through the public API
//! is what the harness already does, and the drill then runs on both backends with the suite.
//! It needs `age`, `tar`, `sha256sum` and `pg_dump`/`pg_restore`/`psql` (PostgreSQL) or `sqlite3`
//! (SQLite); without them it says so and passes, unless `AMTSPLATZ_REQUIRE_BACKUP_TOOLS` is set
//! (CI sets it after installing them).

use std::path::Path;
use std::process::Command;

use sea_orm::{ConnectionTrait as _, Database, Statement};
use serde_json::json;

use crate::applications::dog;
use crate::attachments::{draft, upload_to_draft};
use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_amtsplatz-test-server");

fn script(name: &str) -> String {
    repo_root()
        .join("deploy/backup")
        .join(name)
        .display()
        .to_string()
}

fn tools_missing(postgres: bool) -> Vec<&'static str> {
    let mut tools = vec!["age", "age-keygen", "tar", "sha256sum"];
    tools.extend(if postgres {
        &["pg_dump", "pg_restore", "psql"][..]
    } else {
        &["sqlite3"][..]
    });
    tools
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect()
}

/// Runs `cmd`, panicking with its output when it fails; returns stdout. On a blocking thread:
/// the scripts talk to the S3 server running on this test's runtime.
async fn run(cmd: &mut Command) -> String {
    let mut owned = std::mem::replace(cmd, Command::new("true"));
    let (out, cmd) = tokio::task::spawn_blocking(move || {
        let out = owned.output().expect("the command starts");
        (out, owned)
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command with only the settings given here (none of the caller's `AMTSPLATZ_*`), on the
/// test's S3 server when there is one.
fn with_settings(program: &str, db_url: &str, data_dir: &Path, s3: Option<&S3Server>) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("AMTSPLATZ_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("DATABASE_URL", db_url)
        .env("AMTSPLATZ_DATA_DIR", data_dir)
        .env("BACKUP_SERVER_BIN", BIN)
        .env("AMTSPLATZ_LOG_FORMAT", "json");
    if let Some(s3) = s3 {
        cmd.env("AMTSPLATZ_STORAGE__S3__BUCKET", S3_BUCKET)
            .env("AMTSPLATZ_STORAGE__S3__REGION", "us-east-1")
            .env("AMTSPLATZ_STORAGE__S3__ENDPOINT", &s3.endpoint)
            .env("AMTSPLATZ_STORAGE__S3__PATH_STYLE", "true")
            .env("AMTSPLATZ_STORAGE__S3__ACCESS_KEY", S3_KEYS.0)
            .env("AMTSPLATZ_STORAGE__S3__SECRET_KEY", S3_KEYS.1);
    }
    cmd
}

/// Every table with its number of rows.
async fn row_counts(db_url: &str) -> Vec<(String, i64)> {
    let db = Database::connect(db_url).await.unwrap();
    let backend = db.get_database_backend();
    let list = if backend == sea_orm::DbBackend::Postgres {
        "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
    };
    let names: Vec<String> = db
        .query_all_raw(Statement::from_string(backend, list.to_owned()))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("", "name").unwrap())
        .collect();
    let mut counts = Vec::new();
    for name in names {
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) AS n FROM \"{name}\""),
            ))
            .await
            .unwrap()
            .unwrap();
        counts.push((name, row.try_get::<i64>("", "n").unwrap()));
    }
    db.close().await.ok();
    counts
}

/// `(object key, SHA-256)` of every stored attachment.
async fn attachments(db_url: &str) -> Vec<(String, String)> {
    let db = Database::connect(db_url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT object_key, sha256 FROM attachments WHERE sha256 IS NOT NULL ORDER BY 1"
                .to_owned(),
        ))
        .await
        .unwrap();
    db.close().await.ok();
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "object_key").unwrap(),
                r.try_get("", "sha256").unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_backup_restores_into_a_new_database_with_every_row_and_every_attachment() {
    drill(Storage::Local).await;
}

#[tokio::test]
async fn a_backup_of_s3_objects_restores_every_attachment() {
    drill(Storage::S3).await;
}

async fn drill(storage: Storage) {
    let app = spawn_file_app(storage, |_| {}).await;
    let s3 = app.s3.as_ref();
    let missing = tools_missing(app.is_postgres);
    if !missing.is_empty() {
        assert!(
            std::env::var_os("AMTSPLATZ_REQUIRE_BACKUP_TOOLS").is_none(),
            "the restore drill needs {missing:?}"
        );
        eprintln!("restore drill skipped: {missing:?} not installed");
        return;
    }
    // Arrange: citizens' files in three drafts.
    for i in 0..3 {
        let (draft_id, token) = draft(&app, "hundesteuer", dog(true)).await;
        for (j, body) in [pdf(&format!("Nachweis {i}")), big_pdf(200_000 + i * 7)]
            .into_iter()
            .enumerate()
        {
            let (status, resp) = upload_to_draft(
                &app,
                &draft_id,
                &token,
                Some("sachkundenachweis"),
                &format!("file-{i}-{j}.pdf"),
                "application/pdf",
                body,
            )
            .await;
            assert_eq!(status, 200, "{resp:#}");
        }
    }
    let before = row_counts(&app.db_url).await;
    let files = attachments(&app.db_url).await;
    assert_eq!(files.len(), 6);

    // Back up three times, keeping two; the key that decrypts stays away from the backups.
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("identity.txt");
    run(Command::new("age-keygen").arg("-o").arg(&identity)).await;
    let recipients = keys.path().join("recipients.txt");
    let public = run(Command::new("age-keygen").arg("-y").arg(&identity)).await;
    std::fs::write(&recipients, public).unwrap();
    let vault = tempfile::tempdir().unwrap();
    let mut made = Vec::new();
    for round in 0..3 {
        if round > 0 {
            // Backups are named by the second they were made.
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        let out = run(
            with_settings(&script("backup.sh"), &app.db_url, &app.data_dir, s3)
                .arg(vault.path())
                .env("BACKUP_RECIPIENTS", &recipients)
                .env("BACKUP_KEEP", "2"),
        )
        .await;
        made.push(out.trim().to_owned());
    }
    let mut kept: Vec<String> = std::fs::read_dir(vault.path())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    kept.sort();
    assert_eq!(kept, made[1..].to_vec(), "the two newest are kept");
    let newest = &made[2];
    // Encrypted: no attachment's bytes (nor the dump's table names) are readable in it.
    let sealed = std::fs::read(newest).unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1"));
    assert!(!sealed.windows(9).any(|w| w == b"Nachweis "));
    assert!(!sealed.windows(11).any(|w| w == b"attachments"));

    // Lose everything: the database and the data folder's objects.
    if app.is_postgres {
        let (server, name) = app.db_url.rsplit_once('/').unwrap();
        let name = name.split('?').next().unwrap();
        let admin = Database::connect(format!("{server}/postgres"))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
        admin.close().await.ok();
    } else {
        std::fs::remove_file(app.data_dir.join("test.db")).unwrap();
    }
    // (An S3 bucket is a folder of the S3 server: emptied, it stays.)
    std::fs::remove_dir_all(app.objects_dir()).unwrap();
    if s3.is_some() {
        std::fs::create_dir(app.objects_dir()).unwrap();
    }

    // Restore into a new database and a new data folder.
    let target = tempfile::tempdir().unwrap();
    let (target_url, _pg) = fresh_database(target.path()).await;
    run(
        with_settings(&script("restore.sh"), &target_url, target.path(), s3)
            .arg(newest)
            .env("BACKUP_IDENTITY", &identity),
    )
    .await;

    // Every table has its rows, every attachment its bytes.
    assert_eq!(row_counts(&target_url).await, before);
    assert_eq!(attachments(&target_url).await, files);
    let objects = match s3 {
        Some(_) => app.objects_dir(),
        None => target.path().join("objects"),
    };
    for (key, sha) in &files {
        let bytes = std::fs::read(objects.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(&sha256_hex(&bytes), sha, "{key}");
    }

    // And a server runs on what was restored.
    let mut settings = test_settings(target.path(), &target_url);
    if let Some(s3) = s3 {
        s3.configure(&mut settings);
    }
    let restored = server::startup::Application::build(settings)
        .await
        .expect("a server starts on the restored database");
    let base = format!("http://127.0.0.1:{}", restored.port());
    tokio::spawn(restored.run_until_stopped());
    let resp: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .header("X-Tenant", MUSTER)
        .json(&json!({ "query": "{ tenant { slug } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(data(&resp)["tenant"]["slug"], MUSTER);
}
