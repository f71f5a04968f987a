//! The class import's submissions, read back by its preview page (`import_drafts`).
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub struct Draft {
    pub id: Uuid,
    pub body: String,
    pub read_as: String,
}

pub async fn insert(
    conn: &mut PgConnection,
    user_id: i64,
    body: &str,
    read_as: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO import_drafts (id, user_id, body, read_as) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(user_id)
        .bind(body)
        .bind(read_as)
        .execute(conn)
        .await?;
    Ok(id)
}

/// The draft `id` of `user_id` (another person's draft is not found).
pub async fn find(conn: &mut PgConnection, user_id: i64, id: Uuid) -> sqlx::Result<Option<Draft>> {
    sqlx::query_as("SELECT id, body, read_as FROM import_drafts WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .fetch_optional(conn)
        .await
}
