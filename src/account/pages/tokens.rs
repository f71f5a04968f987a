//! `/account/tokens`: a counselor's or admin's own API tokens.
use actix_web::{http::StatusCode, web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use crate::{
    account::tokens::{self, TokenError},
    config::Config,
    db::api_tokens::TokenRow,
    web::{
        form::FieldErrors, html, html_status, see_other, Csrf, Page, RequireCounselor, WebError,
    },
};

#[derive(Template)]
#[template(path = "account/tokens.html")]
pub struct TokensPage {
    pub page: Page,
    pub tokens: Vec<TokenRow>,
    /// A token just made: shown this once.
    pub made: Option<(String, String)>,
    pub name: String,
    pub errors: FieldErrors,
    /// The API's address, for the example.
    pub api_base: String,
    /// Who the tokens act as, in words.
    pub reach: String,
}

impl TokensPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }

    pub fn when(&self, t: &time::OffsetDateTime) -> crate::web::Moment {
        self.page.clock.moment(*t)
    }
}

impl From<TokenError> for WebError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Name(m) => Self::BadRequest(m),
            TokenError::NotFound(_) => Self::Missing(crate::domain::sentence(&e.to_string())),
            TokenError::Db(e) => e.into(),
        }
    }
}

async fn page(
    pool: &PgPool,
    config: &Config,
    user: &RequireCounselor,
    notice: Option<&str>,
) -> Result<TokensPage, WebError> {
    Ok(TokensPage {
        page: Page::for_user(config, user, "API tokens").with_notice(notice),
        tokens: tokens::list(pool, user.id).await?,
        made: None,
        name: String::new(),
        errors: FieldErrors::default(),
        api_base: format!("{}/api/v1", config.public_url),
        reach: user.reach.describe(),
    })
}

#[derive(Deserialize)]
pub struct TokensQuery {
    revoked: Option<String>,
}

pub async fn list(
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    user: RequireCounselor,
    q: web::Query<TokensQuery>,
) -> Result<HttpResponse, WebError> {
    let notice = q
        .revoked
        .as_ref()
        .map(|_| "Token revoked: it no longer works.");
    html(&page(&pool, &config, &user, notice).await?)
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
}

/// Makes a token and shows it once (the response is not stored: no-store).
pub async fn create(
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    user: RequireCounselor,
    form: Csrf<CreateForm>,
) -> Result<HttpResponse, WebError> {
    match tokens::create(&pool, user.id, &user.username, &form.name).await {
        Ok(token) => {
            let mut p = page(&pool, &config, &user, None).await?;
            p.made = Some((form.name.trim().to_string(), token));
            html(&p)
        }
        Err(TokenError::Name(message)) => {
            let mut p = page(&pool, &config, &user, None).await?;
            p.name = form.name.clone();
            p.errors.add("name", message);
            html_status(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn revoke(
    pool: web::Data<PgPool>,
    user: RequireCounselor,
    path: web::Path<i64>,
    _form: Csrf<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    tokens::revoke(&pool, user.id, &user.username, *path).await?;
    Ok(see_other("/account/tokens?revoked=1"))
}
