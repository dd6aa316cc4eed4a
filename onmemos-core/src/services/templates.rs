use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::api::{CreateTemplate, ErrorCode, Page, TemplateListParams};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::id::TemplateId;
use crate::model::{Resources, Scope, SessionLimits, Template, TemplateCategory};
use crate::ports::TemplateFilter;
use crate::principal::Principal;
use crate::validation::{dns_label, validate};

/// Templates: the built-ins everyone sees, and each user's custom ones.
#[derive(Debug)]
pub struct TemplateService<'e> {
    engine: &'e Engine,
}

/// The names of the built-in templates, reserved for them.
pub const BUILTIN_TEMPLATE_NAMES: &[&str] = &["python", "nodejs", "data-science", "ml"];

/// The built-in templates, as of `now`, with the engine's default limits.
pub fn builtin_templates(now: DateTime<Utc>, limits: SessionLimits) -> Vec<Template> {
    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    let make = |name: &str,
                category: TemplateCategory,
                description: &str,
                image: &str,
                resources: Resources,
                vars: &[(&str, &str)],
                tags: &[&str],
                expected_start_ms: u32| Template {
        id: TemplateId::new(),
        name: name.to_owned(),
        owner_id: None,
        builtin: true,
        description: Some(description.to_owned()),
        category,
        image: image.to_owned(),
        resources,
        env: env(vars),
        default_limits: limits,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        expected_start_ms,
        usage_count: 0,
        created_at: now,
    };
    vec![
        make(
            "python",
            TemplateCategory::Python,
            "Python 3.12 with pip and a virtualenv",
            "python:3.12-slim",
            Resources {
                cpu_millis: 1000,
                memory_mib: 2048,
                gpu: 0,
                disk_gib: 10,
            },
            &[
                ("PYTHONUNBUFFERED", "1"),
                ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
            ],
            &["python", "general"],
            800,
        ),
        make(
            "nodejs",
            TemplateCategory::Nodejs,
            "Node.js 20 LTS with npm",
            "node:20-slim",
            Resources {
                cpu_millis: 1000,
                memory_mib: 2048,
                gpu: 0,
                disk_gib: 10,
            },
            &[("NODE_ENV", "development")],
            &["javascript", "typescript", "web"],
            800,
        ),
        make(
            "data-science",
            TemplateCategory::DataScience,
            "Jupyter with NumPy, pandas, SciPy and matplotlib",
            "quay.io/jupyter/scipy-notebook:2024-10-07",
            Resources {
                cpu_millis: 2000,
                memory_mib: 8192,
                gpu: 0,
                disk_gib: 50,
            },
            &[("JUPYTER_ENABLE_LAB", "yes")],
            &["python", "jupyter", "pandas", "notebooks"],
            5000,
        ),
        make(
            "ml",
            TemplateCategory::Ml,
            "PyTorch with CUDA on one GPU",
            "pytorch/pytorch:2.4.1-cuda12.1-cudnn9-runtime",
            Resources {
                cpu_millis: 4000,
                memory_mib: 16384,
                gpu: 1,
                disk_gib: 100,
            },
            &[("PYTHONUNBUFFERED", "1")],
            &["python", "pytorch", "gpu", "training"],
            15000,
        ),
    ]
}

impl<'e> TemplateService<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        Self { engine }
    }

    /// Writes the built-in templates into the database (run by [`EngineBuilder::build`]).
    ///
    /// [`EngineBuilder::build`]: crate::engine::EngineBuilder::build
    pub async fn seed_builtins(&self) -> Result<()> {
        let now = self.engine.clock().now();
        for template in builtin_templates(now, self.engine.config().default_limits) {
            self.engine
                .database()
                .templates()
                .upsert_builtin(&template)
                .await?;
        }
        Ok(())
    }

    /// A page of the templates the caller can see, filtered by category and tag.
    pub async fn list(
        &self,
        caller: &Principal,
        params: &TemplateListParams,
    ) -> Result<Page<Template>> {
        caller.require(Scope::TemplatesRead)?;
        let page = crate::api::ListParams {
            limit: params.limit,
            cursor: params.cursor.clone(),
        }
        .to_request()?;
        let filter = TemplateFilter {
            category: params.category,
            tag: params.tag.clone(),
        };
        let repo = self.engine.database().templates();
        let Some(crate::api::TemplateSort::Popular) = params.sort else {
            return repo.list_visible(caller.user_id(), &filter, page).await;
        };
        if page.after.is_some() {
            return Err(Error::invalid(
                "cursor",
                "sort=popular returns one page: it takes no cursor",
            ));
        }
        // The visible templates are the built-ins and the caller's own: few enough to rank here.
        let mut all = Vec::new();
        let mut next = crate::api::PageRequest {
            limit: crate::api::MAX_PAGE_SIZE,
            after: None,
        };
        loop {
            let found = repo.list_visible(caller.user_id(), &filter, next).await?;
            all.extend(found.items);
            match found.next_cursor.and_then(|c| c.parse().ok()) {
                Some(after) => {
                    next = crate::api::PageRequest {
                        limit: crate::api::MAX_PAGE_SIZE,
                        after: Some(after),
                    }
                }
                None => break,
            }
        }
        all.sort_by(|a, b| b.usage_count.cmp(&a.usage_count).then(a.id.cmp(&b.id)));
        all.truncate(page.limit as usize);
        Ok(Page {
            items: all,
            next_cursor: None,
        })
    }

    /// A template the caller can see, by id (`tpl_…`) or by name.
    pub async fn get(&self, caller: &Principal, id_or_name: &str) -> Result<Template> {
        caller.require(Scope::TemplatesRead)?;
        let repo = self.engine.database().templates();
        let found = if id_or_name.starts_with("tpl_") {
            let id = id_or_name.parse::<TemplateId>().map_err(|e| {
                Error::with_code(ErrorCode::InvalidParameter, e.to_string())
                    .with_context("field", "template")
            })?;
            repo.get_visible(caller.user_id(), id).await?
        } else {
            dns_label(id_or_name).map_err(|_| {
                Error::with_code(
                    ErrorCode::InvalidParameter,
                    "a template is named by its id (tpl_…) or its DNS-label name",
                )
                .with_context("field", "template")
            })?;
            repo.find_visible_by_name(caller.user_id(), id_or_name)
                .await?
        };
        found.ok_or_else(|| {
            Error::not_found("template not found").with_context("template", id_or_name)
        })
    }

    /// Creates a custom template owned by the caller. Built-in names are reserved.
    pub async fn create(&self, caller: &Principal, request: CreateTemplate) -> Result<Template> {
        caller.require(Scope::TemplatesWrite)?;
        validate(&request)?;
        let now = self.engine.clock().now();
        if BUILTIN_TEMPLATE_NAMES.contains(&request.name.as_str()) {
            return Err(Error::conflict(format!(
                "`{}` is the name of a built-in template",
                request.name
            ))
            .with_context("field", "name"));
        }
        let limits = request
            .default_limits
            .unwrap_or(self.engine.config().default_limits);
        limits.check_within(&self.engine.config().max_limits, "default_limits")?;
        let mut tags = request.tags;
        tags.sort();
        tags.dedup();
        let template = Template {
            id: TemplateId::new(),
            name: request.name,
            owner_id: Some(caller.user_id()),
            builtin: false,
            description: request.description.filter(|d| !d.is_empty()),
            category: request.category.unwrap_or(TemplateCategory::Custom),
            image: request.image,
            resources: request.resources,
            env: request.env,
            default_limits: limits,
            tags,
            expected_start_ms: request.expected_start_ms.unwrap_or(1000),
            usage_count: 0,
            created_at: now,
        };
        self.engine.database().templates().insert(&template).await?;
        tracing::info!(template = %template.id, "template created");
        Ok(template)
    }

    /// Deletes one of the caller's custom templates. Built-ins cannot be deleted.
    pub async fn delete(&self, caller: &Principal, id_or_name: &str) -> Result<()> {
        caller.require(Scope::TemplatesWrite)?;
        let template = self.get(caller, id_or_name).await?;
        if template.builtin {
            return Err(
                Error::permission_denied("built-in templates cannot be deleted")
                    .with_context("template", template.name),
            );
        }
        let deleted = self
            .engine
            .database()
            .templates()
            .delete(caller.user_id(), template.id)
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(Error::not_found("template not found").with_context("template", id_or_name))
        }
    }
}
