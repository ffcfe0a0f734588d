//! The real binary as a process: configuration errors, `tenants apply`, JSON logs without
//! secrets, text logs at a terminal, graceful shutdown on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_amtsplatz-test-server");

fn command(dir: &std::path::Path, db_url: &str) -> Command {
    command_of(BIN, dir, db_url)
}

/// `program` (the server, or a program that runs it) with the server's test environment only.
fn command_of(program: &str, dir: &std::path::Path, db_url: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("AMTSPLATZ_DATA_DIR", dir.join("data"))
        .env("AMTSPLATZ_TENANTS_DIR", dir.join("no-tenants"));
    cmd
}

#[tokio::test]
async fn a_bad_setting_stops_the_server_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), "sqlite://x.db?mode=rwc")
        .env("AMTSPLATZ_BIND", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AMTSPLATZ_BIND"), "{err}");

    let out = command(dir.path(), "sqlite://x.db?mode=rwc")
        .env("AMTSPLATZ_AUTH__ACCESS_TOKEN_TTL_SECS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AMTSPLATZ_AUTH__ACCESS_TOKEN_TTL_SECS"),
        "{err}"
    );

    let out = command(dir.path(), "mysql://localhost/x").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));

    let out = command(dir.path(), "sqlite://x.db?mode=rwc")
        .env("AMTSPLATZ_CONFIG", dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AMTSPLATZ_CONFIG"));
}

fn write_tenant(dir: &std::path::Path, name: &str, extra_dept: bool) {
    let mut text = format!(
        r#"slug = "dorf"
name = "{name}"
ags = "08999006"
[[departments]]
key = "rathaus"
name = "Rathaus"
[first_admin]
email = "admin@dorf.example"
display_name = "Dora Dorf"
initial_password = "dorf-admin-password"
"#
    );
    if extra_dept {
        text.push_str("\n[[departments]]\nkey = \"bauhof\"\nname = \"Bauhof\"\n");
    }
    // Keep [[departments]] before [first_admin] is not required by TOML: arrays of tables may follow.
    std::fs::write(dir.join("dorf.toml"), text).unwrap();
}

#[tokio::test]
async fn tenants_apply_is_idempotent_and_applies_edits() {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _pg) = fresh_database(dir.path()).await;
    let tenants = dir.path().join("tenants");
    std::fs::create_dir_all(&tenants).unwrap();
    write_tenant(&tenants, "Dorf am Bach", false);

    let apply = || {
        command(dir.path(), &db_url)
            .args(["tenants", "apply"])
            .arg(&tenants)
            .output()
            .unwrap()
    };
    let first = apply();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&first.stdout).trim(),
        "dorf: created"
    );
    let second = apply();
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "dorf: unchanged"
    );

    write_tenant(&tenants, "Dorf am Fluss", true);
    let third = apply();
    let out = String::from_utf8_lossy(&third.stdout);
    assert!(
        out.starts_with("dorf: updated (")
            && out.contains("tenant.name")
            && out.contains("department.bauhof.create"),
        "{out}"
    );
    assert_eq!(
        String::from_utf8_lossy(&apply().stdout).trim(),
        "dorf: unchanged"
    );

    // The result, through the API of a server on the same database.
    let mut settings = test_settings(&dir.path().join("data"), &db_url);
    settings.tenants_dir = None;
    let server = server::startup::Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped());
    let resp: Value = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .header("X-Tenant", "dorf")
        .json(&json!({ "query": "{ tenant { name departments { totalCount } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        data(&resp)["tenant"],
        json!({ "name": "Dorf am Fluss", "departments": { "totalCount": 2 } })
    );

    // A broken file names the file and the key, and changes nothing.
    std::fs::write(tenants.join("dorf.toml"), "slug = \"dorf\"\nname = \"X\"\nags = \"12\"\n[first_admin]\nemail = \"a@b.de\"\ndisplay_name = \"A\"\n").unwrap();
    let broken = apply();
    assert!(!broken.status.success());
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("dorf.toml") && err.contains("ags"), "{err}");
}

/// Starts the binary on SQLite with JSON logs; returns it and its port once it listens.
/// The caller waits for the child (the test stops it with SIGTERM and checks its exit).
#[expect(clippy::zombie_processes, reason = "the caller waits for the child")]
fn start_server(
    dir: &std::path::Path,
) -> (std::process::Child, u16, std::sync::mpsc::Receiver<String>) {
    let mut child = command(
        dir,
        &format!("sqlite://{}?mode=rwc", dir.join("s.db").display()),
    )
    .env("AMTSPLATZ_BIND", "127.0.0.1:0")
    .env("AMTSPLATZ_TENANTS_DIR", repo_root().join("tenants"))
    .env("AMTSPLATZ_WORKERS", "1")
    .env("AMTSPLATZ_LOG_FORMAT", "json")
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server starts");
        if let Some(rest) = line.strip_prefix("Amtsplatz listening on http://127.0.0.1:") {
            let port = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (child, port, rx);
        }
    }
}

#[tokio::test]
async fn logs_are_json_with_request_id_and_tenant_and_never_contain_secrets_and_sigterm_stops_cleanly()
 {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, rx) = start_server(dir.path());
    let client = reqwest::Client::new();
    let secret_password = "musterstadt-admin";
    let resp: Value = client
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .header("X-Tenant", MUSTER)
        .json(&json!({ "query": "mutation($p: String!) { login(input: {email: \"admin@musterstadt.example\", password: $p}) { accessToken refreshToken } }", "variables": { "p": secret_password } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = str_at(&data(&resp)["login"], "accessToken");
    let refresh = str_at(&data(&resp)["login"], "refreshToken");
    // A failing request too, whose error is logged.
    client
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .header("X-Tenant", MUSTER)
        .bearer_auth(&access)
        .json(&json!({ "query": "{ me { email } }" }))
        .send()
        .await
        .unwrap();

    // SIGTERM: graceful shutdown, exit code 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");

    let lines: Vec<String> = rx.try_iter().collect();
    let json_lines: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let request_logs: Vec<&Value> = json_lines
        .iter()
        .filter(|l| l["message"] == "graphql request")
        .collect();
    assert!(request_logs.len() >= 2, "{lines:#?}");
    for l in &request_logs {
        assert!(
            l["span"]["request_id"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{l}"
        );
        assert!(l["span"]["tenant.id"].is_string(), "{l}");
    }
    assert!(request_logs.iter().any(|l| {
        l["span"]["user.id"]
            .as_str()
            .is_some_and(|u| u.starts_with("staff:"))
    }));
    // Every log line (the JSON ones; the start-up banner with the demo logins is CLI output).
    assert!(
        json_lines.len() > request_logs.len(),
        "start-up and shutdown are logged too"
    );
    let logs = json_lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for secret in [
        secret_password,
        &access,
        &refresh,
        refresh.rsplit('.').next().unwrap(),
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

/// Starts `serve` on SQLite (on a pseudo-terminal through util-linux `script` when `terminal`),
/// returns its log line saying it started, then stops it.
fn started_log_line(dir: &std::path::Path, terminal: bool, format: Option<&str>) -> String {
    let db = format!("sqlite://{}?mode=rwc", dir.join("l.db").display());
    let mut cmd = if terminal {
        let mut cmd = command_of("script", dir, &db);
        cmd.arg("-qefc")
            .arg(format!("exec '{BIN}' serve"))
            .arg("/dev/null");
        cmd
    } else {
        let mut cmd = command(dir, &db);
        cmd.arg("serve");
        cmd
    };
    cmd.env("AMTSPLATZ_BIND", "127.0.0.1:0")
        .env("AMTSPLATZ_WORKERS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // On the terminal the server's stderr is the terminal too; `script`'s own stderr only
        // says that SIGTERM ended it.
        .stderr(if terminal {
            Stdio::null()
        } else {
            Stdio::inherit()
        });
    if let Some(format) = format {
        cmd.env("AMTSPLATZ_LOG_FORMAT", format);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let line = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("server started") => break line,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no `server started` log line; output: {seen:#?}");
            }
        }
    };
    // SIGTERM (`script` passes it on to the server it runs).
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    line.trim_end_matches('\r').to_owned()
}

#[test]
fn logs_are_text_at_a_terminal_and_json_otherwise_unless_the_setting_says() {
    let dir = tempfile::tempdir().unwrap();
    let is_json = |line: &str| {
        serde_json::from_str::<Value>(line).is_ok_and(|v| v["message"] == "server started")
    };

    // A person at a terminal reads text (coloured), not JSON.
    let line = started_log_line(dir.path(), true, None);
    assert!(!is_json(&line) && line.contains("http.port"), "{line:?}");
    // Piped (a container, a collector): JSON lines.
    let line = started_log_line(dir.path(), false, None);
    assert!(is_json(&line), "{line:?}");
    // The setting decides over the terminal: JSON at a terminal, text in a pipe (plain, no colour codes).
    let line = started_log_line(dir.path(), true, Some("json"));
    assert!(is_json(&line), "{line:?}");
    let line = started_log_line(dir.path(), false, Some("text"));
    assert!(
        !is_json(&line) && line.contains("http.port=") && !line.contains('\x1b'),
        "{line:?}"
    );
}

#[tokio::test]
async fn test_variables_in_the_environment_do_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // `migrate` loads the settings like `serve` does, then exits.
    let out = command(
        dir.path(),
        &format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display()),
    )
    .env(
        "AMTSPLATZ_TEST_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
    .arg("migrate")
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A misspelt setting still stops it, naming the variable.
    let out = command(dir.path(), "sqlite://x.db?mode=rwc")
        .env("AMTSPLATZ_BIDN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("bidn")
    );
}

/// Copies a folder tree (the shipped tenant files) into a test's own folder.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn marketplace_files_apply_once_and_published_versions_cannot_be_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _pg) = fresh_database(dir.path()).await;
    let tenants = dir.path().join("tenants");
    copy_tree(&repo_root().join("tenants"), &tenants);
    let apply = || {
        command(dir.path(), &db_url)
            .args(["tenants", "apply"])
            .arg(&tenants)
            .output()
            .unwrap()
    };
    let first = apply();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout).to_string();
    for line in [
        "template hundesteuer-anmeldung: created",
        "template meldebescheinigung: created",
        "musterstadt: service hundesteuer created",
        "beispielhausen: service sperrmuell created",
        "exempelburg: service bewohnerparken created",
        "musterstadt: location buergerbuero created",
        "musterstadt: appointment offer meldebescheinigung at buergerbuero created",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing in:\n{out}");
    }
    // Again: nothing to do, nothing reported beyond the tenants.
    let second = apply();
    let out = String::from_utf8_lossy(&second.stdout).to_string();
    assert!(second.status.success());
    assert!(out.lines().all(|l| l.ends_with(": unchanged")), "{out}");

    // An edited location or offer is saved again; a broken one is refused by name.
    let file = tenants.join("musterstadt.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let edited = original
        .replace("Bürgerbüro im Rathaus", "Bürgerbüro im Neuen Rathaus")
        .replace("hold_minutes = 10", "hold_minutes = 15");
    assert_ne!(edited, original);
    std::fs::write(&file, &edited).unwrap();
    let out = apply();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for line in [
        "musterstadt: location buergerbuero updated",
        "musterstadt: appointment offer meldebescheinigung at buergerbuero updated",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing in:\n{text}"
        );
    }
    assert!(
        String::from_utf8_lossy(&apply().stdout)
            .lines()
            .all(|l| l.ends_with(": unchanged")),
        "applying the edit again changes nothing"
    );
    std::fs::write(
        &file,
        edited.replace("horizon_days = 60", "horizon_days = 9000"),
    )
    .unwrap();
    let broken = apply();
    assert!(!broken.status.success());
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(
        err.contains("meldebescheinigung at buergerbuero") && err.contains("horizonDays"),
        "{err}"
    );
    std::fs::write(&file, &edited).unwrap();

    // A new version file is published; editing a published one is refused by name.
    let folder = tenants.join("marketplace/sperrmuell-anmeldung");
    let mut content: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("1.0.0.json")).unwrap()).unwrap();
    content["summary"]["de"] = json!("Sperrmüll bequem online anmelden");
    std::fs::write(folder.join("1.0.1.json"), content.to_string()).unwrap();
    let manifest = std::fs::read_to_string(folder.join("template.toml")).unwrap();
    std::fs::write(
        folder.join("template.toml"),
        format!("{manifest}\n[[versions]]\nversion = \"1.0.1\"\nfile = \"1.0.1.json\"\nchangelog = \"Kurzbeschreibung\"\n"),
    )
    .unwrap();
    let third = apply();
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert!(
        String::from_utf8_lossy(&third.stdout)
            .contains("template sperrmuell-anmeldung: published 1.0.1"),
        "{}",
        String::from_utf8_lossy(&third.stdout)
    );
    std::fs::write(folder.join("1.0.0.json"), content.to_string()).unwrap();
    let fourth = apply();
    assert!(!fourth.status.success());
    let err = String::from_utf8_lossy(&fourth.stderr);
    assert!(
        err.contains("sperrmuell-anmeldung") && err.contains("immutable"),
        "{err}"
    );
}
