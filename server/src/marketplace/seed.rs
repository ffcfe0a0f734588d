//! Declarative marketplace content: `tenants/marketplace/<slug>/template.toml` names a template
//! (author tenant, visibility, license, tags) and its versions, each a JSON content file.
//! Applying is idempotent and additive: missing templates are created, missing versions published
//! (semver rules apply); a published version whose file changed is an error — versions are
//! immutable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use entity::{templates, tenants};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use semver::Version;
use serde::Deserialize;

use super::service::{self, NewTemplate, NewVersion, Visibility};
use crate::content::ServiceContent;
use crate::context::{Principal, TenantCtx};
use crate::db::begin_platform;
use crate::error::{AppError, AppResult, FileError};
use crate::ids::{TemplateId, TenantId};
use crate::tenancy::types::Slug;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    slug: String,
    /// Slug of the author tenant.
    author: String,
    #[serde(default = "public")]
    visibility: String,
    #[serde(default = "eupl")]
    license: String,
    #[serde(default)]
    tags: Vec<String>,
    versions: Vec<VersionFile>,
}

fn public() -> String {
    "public".into()
}

fn eupl() -> String {
    "EUPL-1.2".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionFile {
    version: String,
    /// The content JSON, relative to the template folder.
    file: String,
    #[serde(default)]
    changelog: String,
}

/// A parsed template folder.
#[derive(Debug)]
pub struct TemplateSeed {
    pub slug: Slug,
    pub author: String,
    pub visibility: Visibility,
    pub license: String,
    pub tags: Vec<String>,
    /// Ascending.
    pub versions: Vec<VersionSeed>,
}

#[derive(Debug)]
pub struct VersionSeed {
    pub version: Version,
    pub content: ServiceContent,
    pub changelog: String,
}

/// What applying a seed did.
#[derive(Debug, PartialEq, Eq)]
pub enum SeedOutcome {
    Created,
    /// Versions published.
    Published(Vec<String>),
    Unchanged,
}

/// Reads every `<dir>/<slug>/template.toml`, sorted by folder name.
pub fn load_dir(dir: &Path) -> Result<Vec<TemplateSeed>, FileError> {
    let err = |file: &Path, message: String| FileError {
        file: file.to_owned(),
        message,
    };
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("template.toml").is_file())
        .collect();
    folders.sort();
    folders.iter().map(|f| load_folder(f)).collect()
}

fn load_folder(folder: &Path) -> Result<TemplateSeed, FileError> {
    let manifest = folder.join("template.toml");
    let err = |file: &Path, message: String| FileError {
        file: file.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(&manifest).map_err(|e| err(&manifest, e.to_string()))?;
    let parsed: TemplateFile = toml::from_str(&text).map_err(|e| err(&manifest, e.to_string()))?;
    let slug = Slug::parse("slug", &parsed.slug).map_err(|e| err(&manifest, e.to_string()))?;
    let visibility = match parsed.visibility.as_str() {
        "public" => Visibility::Public,
        "private" => Visibility::Private,
        other => {
            return Err(err(
                &manifest,
                format!("`visibility` is `{other}`; use public or private"),
            ));
        }
    };
    let mut versions = Vec::new();
    for (i, v) in parsed.versions.iter().enumerate() {
        let version = Version::parse(&v.version)
            .map_err(|e| err(&manifest, format!("`versions[{i}].version`: {e}")))?;
        let file = folder.join(&v.file);
        let raw = std::fs::read_to_string(&file).map_err(|e| err(&file, e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&raw).map_err(|e| err(&file, e.to_string()))?;
        let content = ServiceContent::parse(&json).map_err(|e| err(&file, e.describe()))?;
        versions.push(VersionSeed {
            version,
            content,
            changelog: v.changelog.trim().to_owned(),
        });
    }
    if versions.windows(2).any(|w| w[0].version >= w[1].version) {
        return Err(err(
            &manifest,
            "`versions` must be in ascending order".into(),
        ));
    }
    Ok(TemplateSeed {
        slug,
        author: parsed.author,
        visibility,
        license: parsed.license,
        tags: parsed.tags,
        versions,
    })
}

/// A context acting for `tenant` as the server itself.
pub async fn system_ctx(
    db: &DatabaseConnection,
    tenant_slug: &str,
    job: &'static str,
) -> AppResult<TenantCtx> {
    let txn = begin_platform(db).await?;
    let tenant = tenants::Entity::find()
        .filter(tenants::Column::Slug.eq(tenant_slug))
        .one(&txn)
        .await?;
    txn.commit().await?;
    let tenant = tenant.ok_or(AppError::NotFound("tenant"))?;
    Ok(TenantCtx {
        tenant_id: TenantId(tenant.id),
        tenant: Arc::new(tenant),
        principal: Principal::System(job),
    })
}

/// Creates the template and publishes its missing versions.
pub async fn apply(db: &DatabaseConnection, seed: &TemplateSeed) -> AppResult<SeedOutcome> {
    let ctx = system_ctx(db, &seed.author, "marketplace").await?;
    let existing =
        match service::template_by_slug(db, Some(ctx.tenant_id), seed.slug.as_str()).await {
            Ok(t) => Some(t),
            Err(AppError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
    let (template, created) = match existing {
        Some(t) if t.author_tenant_id != ctx.tenant_id.0 => {
            return Err(AppError::conflict(
                "slug",
                format!("template `{}` belongs to another tenant", seed.slug),
            ));
        }
        Some(t) => (t, false),
        None => {
            let first = seed.versions.first().ok_or_else(|| {
                AppError::invalid("versions", "a template file needs at least one version")
            })?;
            let t = service::create_template(
                db,
                &ctx,
                NewTemplate {
                    slug: seed.slug.clone(),
                    title: first.content.title.de.clone(),
                    summary: first.content.summary.de.clone(),
                    category: first.content.category.to_string(),
                    tags: seed.tags.clone(),
                    license: seed.license.clone(),
                    visibility: seed.visibility,
                },
            )
            .await?;
            (t, true)
        }
    };
    let published = published_versions(db, &ctx, &template).await?;
    let mut added = Vec::new();
    for v in &seed.versions {
        match published.iter().find(|(n, _)| n == &v.version.to_string()) {
            Some((_, content)) => {
                // Compared as content, not as JSON: a server that learned a new optional setting
                // serializes the same version with one more default.
                let same = serde_json::from_value::<ServiceContent>(content.clone())
                    .is_ok_and(|stored| stored == v.content);
                if !same {
                    return Err(AppError::conflict(
                        "versions",
                        format!(
                            "version {} of `{}` is published with other content; published versions are immutable, publish a new version instead",
                            v.version, seed.slug
                        ),
                    ));
                }
            }
            None => {
                service::publish_version(
                    db,
                    &ctx,
                    NewVersion {
                        template_id: TemplateId(template.id),
                        version: v.version.clone(),
                        content: v.content.clone(),
                        changelog: v.changelog.clone(),
                    },
                )
                .await?;
                added.push(v.version.to_string());
            }
        }
    }
    Ok(if created {
        SeedOutcome::Created
    } else if added.is_empty() {
        SeedOutcome::Unchanged
    } else {
        SeedOutcome::Published(added)
    })
}

async fn published_versions(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    template: &templates::Model,
) -> AppResult<Vec<(String, serde_json::Value)>> {
    let txn = crate::db::begin_tenant(db, ctx.tenant_id).await?;
    let versions = service::versions_of(&txn, &[template.id]).await?;
    txn.commit().await?;
    Ok(versions
        .into_iter()
        .map(|v| (v.version, v.content))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::impact::Impact;

    #[test]
    fn the_shipped_marketplace_seeds_parse_and_their_versions_follow_semver() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenants/marketplace");
        let seeds = load_dir(&dir).unwrap();
        let slugs: Vec<_> = seeds.iter().map(|s| s.slug.as_str()).collect();
        assert_eq!(
            slugs,
            [
                "bewohnerparkausweis",
                "hundesteuer-anmeldung",
                "meldebescheinigung",
                "sperrmuell-anmeldung"
            ]
        );
        for seed in &seeds {
            for pair in seed.versions.windows(2) {
                let (impact, _) = pair[1].content.impact_since(&pair[0].content);
                let bump = if pair[1].version.major > pair[0].version.major {
                    Impact::Major
                } else if pair[1].version.minor > pair[0].version.minor {
                    Impact::Minor
                } else {
                    Impact::Patch
                };
                assert!(impact <= bump, "{} {}", seed.slug, pair[1].version);
            }
        }
        let dog = seeds
            .iter()
            .find(|s| s.slug.as_str() == "hundesteuer-anmeldung")
            .unwrap();
        assert_eq!(dog.versions.len(), 2);
    }

    #[test]
    fn a_bad_template_file_names_the_file_and_the_path() {
        let dir = tempfile_dir();
        let folder = dir.join("kaputt");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("template.toml"),
            "slug = \"kaputt\"\nauthor = \"musterstadt\"\n[[versions]]\nversion = \"1.0.0\"\nfile = \"1.0.0.json\"\n",
        )
        .unwrap();
        std::fs::write(folder.join("1.0.0.json"), "{\"title\": {\"de\": \"x\"}}").unwrap();
        let e = load_dir(&dir).unwrap_err();
        assert!(e.file.ends_with("kaputt/1.0.0.json"), "{e}");
        assert!(e.message.contains("summary"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("amtsplatz-seed-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
