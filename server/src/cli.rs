//! Command line: `serve` (default), `migrate`, `export-schema`, `tenants apply <dir>`,
//! `fim import <schema.xml>`, `objects export|import <dir>` (backups, see `deploy/backup/`).
//! Output for people goes to stdout/stderr here; logs go through tracing.

#![expect(clippy::print_stdout, reason = "the CLI talks to its user on stdout")]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::Settings;
use crate::startup::Application;
use crate::tenancy::onboarding::{self, Mode, Outcome};

#[derive(Parser, Debug)]
#[command(
    name = "server",
    about = "Amtsplatz: multi-tenant GraphQL server for municipal online services"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Write the GraphQL SDL (default: frontend-schema/schema.graphql).
    ExportSchema {
        #[arg(long, default_value = "frontend-schema/schema.graphql")]
        out: PathBuf,
    },
    /// Manage tenants from onboarding files.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// FIM forms (XDatenfelder).
    Fim {
        #[command(subcommand)]
        command: FimCommand,
    },
    /// Copy the object store (attachments; local files or S3) to or from a folder, for backups.
    Objects {
        #[command(subcommand)]
        command: ObjectsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum FimCommand {
    /// Turn an XDatenfelder 2 schema into template content, as `importFimSchema` does: the
    /// content goes to `--out` (or stdout), the report to stderr. Publish the content with
    /// `publishTemplateVersion`.
    Import {
        /// The schema message (`xdatenfelder.stammdatenschema.0102`).
        schema: PathBuf,
        /// A Genericode code list of its select fields (repeat for each).
        #[arg(long = "code-list")]
        code_lists: Vec<PathBuf>,
        /// The content's category.
        #[arg(long, default_value = "fim")]
        category: String,
        /// Where to write the content (JSON); stdout if not given.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum ObjectsCommand {
    /// Write every object to `<dir>/<key>` (the folder must not exist yet).
    Export { dir: PathBuf },
    /// Store every file under `<dir>` as the object named by its path below `<dir>`.
    Import { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
enum TenantsCommand {
    /// Create or update every tenant described by `<dir>/*.toml` (idempotent).
    Apply { dir: PathBuf },
}

/// Entry point of the `server` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Some(Command::ExportSchema { out }) = &cli.command {
        return export_schema(out);
    }
    if let Some(Command::Fim {
        command:
            FimCommand::Import {
                schema,
                code_lists,
                category,
                out,
            },
    }) = &cli.command
    {
        return fim_import(schema, code_lists, category, out.as_deref());
    }
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(crate::telemetry::format_for_stdout(settings.log_format));
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::Tenants {
            command: TenantsCommand::Apply { dir },
        } => apply_tenants(&settings, &dir).await,
        Command::Objects {
            command: ObjectsCommand::Export { dir },
        } => crate::storage::backup::export(&settings, &dir).await,
        Command::Objects {
            command: ObjectsCommand::Import { dir },
        } => crate::storage::backup::import(&settings, &dir).await,
        Command::ExportSchema { .. } | Command::Fim { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn export_schema(out: &PathBuf) -> ExitCode {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("error: creating {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    match std::fs::write(out, crate::schema::sdl()) {
        Ok(()) => {
            println!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: writing {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn fim_import(
    schema: &std::path::Path,
    code_lists: &[PathBuf],
    category: &str,
    out: Option<&std::path::Path>,
) -> ExitCode {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))
    };
    let texts = std::iter::once(schema)
        .chain(code_lists.iter().map(PathBuf::as_path))
        .map(read)
        .collect::<Result<Vec<_>, _>>();
    let texts = match texts {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (xml, lists) = texts.split_at(1);
    let started = std::time::Instant::now();
    let imported = crate::marketplace::fim::import(&crate::marketplace::fim::ImportInput {
        xml: &xml[0],
        code_lists: lists,
        category,
        xml_field: "schema",
        code_lists_field: "code-list",
    });
    let elapsed = started.elapsed();
    let imported = match imported {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {}", e.describe());
            return ExitCode::FAILURE;
        }
    };
    let content = match serde_json::to_string_pretty(&imported.content) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = match out {
        Some(path) => std::fs::write(path, content + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display())),
        None => {
            println!("{content}");
            Ok(())
        }
    };
    if let Err(e) = written {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let r = &imported.report;
    eprintln!(
        "{} {} „{}“: {} fields ({} distinct), {} groups ({} distinct), {} rules, {} code lists ({} missing) -> {} steps, {} properties, {} documents in {} ms",
        r.schema_id,
        r.schema_version.as_deref().unwrap_or("?"),
        r.name,
        r.fields,
        r.distinct_fields,
        r.groups,
        r.distinct_groups,
        r.rules,
        r.code_lists,
        r.code_lists_missing,
        r.steps,
        r.properties,
        r.documents,
        elapsed.as_millis()
    );
    for w in &r.warnings {
        eprintln!("warning: {}: {}", w.path, w.message);
    }
    ExitCode::SUCCESS
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let url = format!(
        "http://{}:{}",
        app.state().settings.bind_addr()?.ip(),
        app.port()
    );
    println!("Amtsplatz listening on {url}  (GraphiQL: {url}/graphql)");
    println!("Citizen portals: {url}/  (one per municipality, e.g. {url}/t/<tenant>/)");
    let mut portals: Vec<&str> = app
        .demo_logins()
        .iter()
        .filter_map(|l| l.tenant.as_deref())
        .collect();
    portals.dedup();
    for tenant in portals {
        println!("  {url}/t/{tenant}/");
    }
    if !app.demo_logins().is_empty() {
        println!("Demo logins (send the tenant as header X-Tenant):");
        for l in app.demo_logins() {
            println!(
                "  {:<14} {:<36} {}",
                l.tenant.as_deref().unwrap_or("(platform)"),
                l.email,
                l.password
            );
        }
    }
    tracing::info!(http.port = app.port(), "server started");
    app.run_until_stopped().await?;
    tracing::info!("server stopped");
    Ok(())
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let owner = crate::db::connect_owner(settings).await?;
    crate::db::migrate(&owner).await?;
    println!("migrations applied");
    Ok(())
}

async fn apply_tenants(settings: &Settings, dir: &std::path::Path) -> anyhow::Result<()> {
    let specs = onboarding::load_dir(dir)?;
    let owner = crate::db::connect_owner(settings).await?;
    crate::db::migrate(&owner).await?;
    let db = crate::db::connect_app(settings, &owner).await?;
    for spec in &specs {
        let applied = onboarding::apply(&db, spec, "system:cli", Mode::Upsert)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", spec.slug))?;
        match applied.outcome {
            Outcome::Created => println!("{}: created", spec.slug),
            Outcome::Unchanged => println!("{}: unchanged", spec.slug),
            Outcome::Updated(changes) => {
                println!("{}: updated ({})", spec.slug, changes.join(", "))
            }
        }
    }
    for line in crate::tenancy::onboarding::apply_all(&db, dir, &specs).await? {
        println!("{line}");
    }
    Ok(())
}
