//! `card_batches` and `card_secrets` (migration 0020): the sealed login cards of a bulk
//! password reset, kept for a window and then deleted.
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Batch {
    pub job_id: Uuid,
    pub form_id: Uuid,
    pub sealing_key: Vec<u8>,
    pub students: i32,
    pub expires_at: OffsetDateTime,
}

/// Records the batch of job `job_id`, unless the form `form_id` started one already: then
/// nothing is written and the earlier batch's job is returned as `Err`.
pub async fn insert_batch(
    conn: &mut PgConnection,
    job_id: Uuid,
    form_id: Uuid,
    sealing_key: &[u8],
    students: i32,
    expires_at: OffsetDateTime,
) -> sqlx::Result<Result<(), Uuid>> {
    let inserted = sqlx::query(
        "INSERT INTO card_batches (job_id, form_id, sealing_key, students, expires_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (form_id) DO NOTHING",
    )
    .bind(job_id)
    .bind(form_id)
    .bind(sealing_key)
    .bind(students)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Ok(()));
    }
    let earlier: Uuid = sqlx::query_scalar("SELECT job_id FROM card_batches WHERE form_id = $1")
        .bind(form_id)
        .fetch_one(conn)
        .await?;
    Ok(Err(earlier))
}

/// The job that the confirmation form `form_id` started, if it was submitted.
pub async fn job_of_form(conn: &mut PgConnection, form_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT job_id FROM card_batches WHERE form_id = $1")
        .bind(form_id)
        .fetch_optional(conn)
        .await
}

pub async fn batch(conn: &mut PgConnection, job_id: Uuid) -> sqlx::Result<Option<Batch>> {
    sqlx::query_as(
        "SELECT job_id, form_id, sealing_key, students, expires_at FROM card_batches
          WHERE job_id = $1",
    )
    .bind(job_id)
    .fetch_optional(conn)
    .await
}

/// Stores one student's sealed password; false when the student already has one in this
/// batch (another run of the job got there first: the caller must change nothing).
pub async fn insert_secret(
    conn: &mut PgConnection,
    job_id: Uuid,
    user_id: i64,
    position: i32,
    sealed: &[u8],
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO card_secrets (job_id, user_id, position, sealed) VALUES ($1, $2, $3, $4)
         ON CONFLICT (job_id, user_id) DO NOTHING",
    )
    .bind(job_id)
    .bind(user_id)
    .bind(position)
    .bind(sealed)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// The students of a batch that have their new password already.
pub async fn done_user_ids(conn: &mut PgConnection, job_id: Uuid) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT user_id FROM card_secrets WHERE job_id = $1")
        .bind(job_id)
        .fetch_all(conn)
        .await
}

/// A sealed card with the account it belongs to (as the account reads now).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedCard {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub cohort: Option<String>,
    pub sealed: Vec<u8>,
}

/// The batch's sealed cards in the order of the selection, while its window lasts.
pub async fn sealed_cards(conn: &mut PgConnection, job_id: Uuid) -> sqlx::Result<Vec<SealedCard>> {
    sqlx::query_as(
        "SELECT s.user_id, u.username, u.display_name, u.cohort, s.sealed
           FROM card_secrets s
           JOIN card_batches b ON b.job_id = s.job_id
           JOIN users u ON u.id = s.user_id
          WHERE s.job_id = $1 AND b.expires_at > now()
          ORDER BY s.position",
    )
    .bind(job_id)
    .fetch_all(conn)
    .await
}

/// How many cards the batch holds (also after its window: the rows are gone then, so 0).
pub async fn count(conn: &mut PgConnection, job_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM card_secrets WHERE job_id = $1")
        .bind(job_id)
        .fetch_one(conn)
        .await
}

/// Deletes the sealed passwords of every batch whose window has ended; returns how many.
pub async fn purge_expired(conn: &mut PgConnection) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM card_secrets s USING card_batches b
          WHERE s.job_id = b.job_id AND b.expires_at <= now()",
    )
    .execute(conn)
    .await?
    .rows_affected())
}
