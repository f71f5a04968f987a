-- Per-student storage limits (`crate::homes::quota`): NULL = the configured default
-- (`[homes] quota_default`); otherwise the student's own limit in bytes, set by a counselor on
-- the student's page or through the API. At most 16 TiB (2^44), the largest EBS volume.
ALTER TABLE users ADD COLUMN home_quota_bytes BIGINT
    CHECK (home_quota_bytes IS NULL OR (home_quota_bytes >= 1048576 AND home_quota_bytes <= 17592186044416));
