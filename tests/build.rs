//! `cfg(pg)` when the suite runs on PostgreSQL (`AMTSPLATZ_TEST_DATABASE_URL` set): tests that
//! only mean something there carry `#[cfg_attr(not(pg), ignore = "PostgreSQL only")]`, so cargo
//! reports them as ignored on SQLite instead of counting an empty pass.

fn main() {
    println!("cargo::rerun-if-env-changed=AMTSPLATZ_TEST_DATABASE_URL");
    println!("cargo::rustc-check-cfg=cfg(pg)");
    if std::env::var("AMTSPLATZ_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        println!("cargo::rustc-cfg=pg");
    }
}
