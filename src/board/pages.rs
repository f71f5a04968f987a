//! `GET /board` (counselors and admins): the roll board of one cohort or of everyone, with
//! counts; `GET /board/live` is the same table alone, which the page fetches every few
//! seconds (`static/app.js`, `data-live`) so it updates without a reload. Without the script
//! the page is still whole (reload it). Only translates the board's [`Look`].
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use time::OffsetDateTime;

use super::{look::Look, roll::Place, Board, BoardError};
use crate::{
    db,
    domain::Reach,
    web::routes::{Access, Table},
    web::{clock::Clock, html, Page, RequireCounselor, WebError},
};

/// How often the page asks for the table again, in seconds.
pub const REFRESH_SECS: u32 = 5;

/// A row as the table shows it.
pub struct RowView {
    pub username: String,
    pub display_name: String,
    pub cohort: String,
    pub key: &'static str,
    pub word: &'static str,
    /// "for 2 min · no worker has 2 GiB free", "idle 25 min · stopped by the culler at 10:05".
    pub detail: String,
}

/// The live part: counts, problems and rows.
#[derive(Template)]
#[template(path = "board/live.html")]
pub struct LivePart {
    pub counts: Vec<(&'static str, &'static str, usize)>,
    pub rows: Vec<RowView>,
    pub hub_problem: Option<String>,
    pub swarm_problem: Option<String>,
    pub updated: String,
    pub total: usize,
    pub cohort: String,
}

#[derive(Template)]
#[template(path = "board/show.html")]
pub struct BoardPage {
    pub page: Page,
    pub cohorts: Vec<String>,
    pub cohort: String,
    pub live: LivePart,
    pub live_url: String,
    pub refresh_secs: u32,
}

#[derive(Deserialize)]
pub struct BoardQuery {
    #[serde(default)]
    cohort: String,
}

/// "45 s", "3 min", "1 h 5 min".
pub fn span(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        _ if secs % 3600 < 60 => format!("{} h", secs / 3600),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

fn detail(place: &Place, now: OffsetDateTime, clock: &Clock) -> String {
    let since = |t: Option<OffsetDateTime>| t.map(|t| span((now - t).whole_seconds()));
    match place {
        Place::Ready { since: t } => since(*t).map(|s| format!("up {s}")).unwrap_or_default(),
        Place::Idle { since: t, stops_at } => {
            let idle = format!("idle {}", span((now - *t).whole_seconds()));
            match stops_at {
                Some(at) => format!(
                    "{idle} · the culler stops it at {}",
                    clock.time_of_day(*at).short
                ),
                None => idle,
            }
        }
        Place::Starting { since: t, waiting } => {
            let mut s = since(*t).map(|s| format!("for {s}")).unwrap_or_default();
            if let Some(w) = waiting {
                if !s.is_empty() {
                    s.push_str(" · ");
                }
                s.push_str(w);
            }
            s
        }
        Place::Failed { reason } => reason.clone(),
        // Unknown: the banner above the table says why (no hub configured, or no answer).
        Place::Stopping | Place::Stopped | Place::NeverLoggedIn | Place::Unknown => String::new(),
    }
}

fn live_part(look: Look, clock: &Clock, cohort: &str) -> LivePart {
    let rows: Vec<RowView> = look
        .rows
        .into_iter()
        .map(|r| {
            let mut detail = detail(&r.place, look.at, clock);
            if let Some(at) = r.unstuck_at {
                if !detail.is_empty() {
                    detail.push_str(" · ");
                }
                detail.push_str(&format!(
                    "pressed \u{201c}My notebook is stuck\u{201d} at {}",
                    clock.time_of_day(at).short
                ));
            }
            RowView {
                username: r.username.to_string(),
                display_name: r.display_name,
                cohort: r.cohort.unwrap_or_default(),
                key: r.place.key(),
                word: Place::word(r.place.key()),
                detail,
            }
        })
        .collect();
    LivePart {
        counts: look
            .counts
            .into_iter()
            .filter(|(k, n)| *n > 0 || matches!(*k, "ready" | "starting" | "failed"))
            .map(|(k, n)| (k, Place::word(k), n))
            .collect(),
        total: rows.len(),
        rows,
        hub_problem: look.hub_problem,
        swarm_problem: look.swarm_problem,
        updated: clock.time_of_day(look.at).short,
        cohort: cohort.to_string(),
    }
}

async fn look(board: &Board, reach: &Reach, cohort: &str) -> Result<Look, WebError> {
    let cohort = (!cohort.is_empty()).then_some(cohort);
    board.look(reach, cohort).await.map_err(|e| match e {
        BoardError::NotYours(why) => WebError::NotYours(crate::domain::sentence(&why.0)),
        BoardError::Db(e) => e.into(),
    })
}

/// The board's pages (handlers stay private: the route table is the only way in).
pub fn routes(t: &mut Table) {
    t.get("/board", Access::Counselor, show)
        .get("/board/live", Access::Counselor, live);
}

/// `GET /board?cohort=…`.
async fn show(
    board: web::Data<Board>,
    config: web::Data<crate::config::Config>,
    user: RequireCounselor,
    q: web::Query<BoardQuery>,
) -> Result<HttpResponse, WebError> {
    let title = if q.cohort.is_empty() {
        "Roll board".to_string()
    } else {
        format!("Roll board · {}", q.cohort)
    };
    let page = Page::for_user(&config, &user, title);
    let cohorts = {
        let mut conn = board.pool.acquire().await?;
        let mut all = db::users::cohorts(&mut conn).await?;
        all.retain(|c| user.reach.admits(Some(c)));
        all
    };
    let look = look(&board, &user.reach, &q.cohort).await?;
    let live = live_part(look, &page.clock, &q.cohort);
    html(&BoardPage {
        page,
        cohorts,
        live_url: format!(
            "/board/live?{}",
            serde_urlencoded::to_string([("cohort", q.cohort.as_str())]).unwrap_or_default()
        ),
        cohort: q.cohort.clone(),
        live,
        refresh_secs: REFRESH_SECS,
    })
}

/// `GET /board/live?cohort=…`: the table alone, for the page's refresh.
async fn live(
    board: web::Data<Board>,
    config: web::Data<crate::config::Config>,
    user: RequireCounselor,
    q: web::Query<BoardQuery>,
) -> Result<HttpResponse, WebError> {
    let clock = Clock::new(&config);
    let look = look(&board, &user.reach, &q.cohort).await?;
    html(&live_part(look, &clock, &q.cohort))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_short() {
        assert_eq!(span(-3), "0 s");
        assert_eq!(span(45), "45 s");
        assert_eq!(span(125), "2 min");
        assert_eq!(span(3600), "1 h");
        assert_eq!(span(3900), "1 h 5 min");
    }
}
