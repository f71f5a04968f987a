//! Credentials on a page: a table on screen, a sheet of login cards on paper. Shown once after
//! an import or a single reset; for a bulk reset, readable again until its window ends.
use actix_web::HttpResponse;
use askama::Template;
use base64::{engine::general_purpose::STANDARD, Engine};

use crate::{
    config::Config,
    roster::Credential,
    web::{html, Page, WebError},
};

pub struct Card {
    pub username: String,
    pub display_name: String,
    pub cohort: String,
    pub password: String,
    pub qr: String,
}

#[derive(Template)]
#[template(path = "roster/cards.html")]
pub struct CardsPage {
    pub page: Page,
    pub heading: String,
    pub login_url: String,
    pub cards: Vec<Card>,
    /// A bulk reset's cards, which can be shown again until the window ends.
    pub batch: Option<Batch>,
}

/// What the cards page says about a bulk reset's batch.
pub struct Batch {
    /// `HH:MM UTC`: when the passwords are deleted.
    pub until: String,
    /// The job stopped before every student was reset: why, and what that means.
    pub failed: Option<String>,
    /// The job's id, for its page.
    pub job: String,
}

/// An SVG QR code as a data: URI (an `<img>`, so no markup from us is injected into the page).
pub fn qr_data_uri(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(96, 96)
                .quiet_zone(false)
                .build();
            format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg))
        }
        Err(_) => String::new(),
    }
}

pub fn render(
    config: &Config,
    page: Page,
    heading: String,
    creds: Vec<Credential>,
) -> Result<HttpResponse, WebError> {
    html(&cards_page(config, page, heading, creds, None))
}

/// A bulk reset's cards: "available until HH:MM".
pub fn render_batch(
    config: &Config,
    page: Page,
    heading: String,
    creds: Vec<Credential>,
    batch: Batch,
) -> Result<HttpResponse, WebError> {
    html(&cards_page(config, page, heading, creds, Some(batch)))
}

fn cards_page(
    config: &Config,
    page: Page,
    heading: String,
    creds: Vec<Credential>,
    batch: Option<Batch>,
) -> CardsPage {
    let login_url = format!("{}/login", config.public_url);
    let cards = creds
        .into_iter()
        .map(|c| {
            let qr = qr_data_uri(&format!("{login_url}?username={}", c.username));
            Card {
                username: c.username,
                display_name: c.display_name,
                cohort: c.cohort.unwrap_or_default(),
                password: c.password,
                qr,
            }
        })
        .collect();
    CardsPage {
        page,
        heading,
        login_url,
        cards,
        batch,
    }
}
