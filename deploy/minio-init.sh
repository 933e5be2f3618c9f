#!/bin/sh
# compose.yaml's one-shot `minio-init` (in the MinIO client image): the recordings bucket,
# versioned, and a user of its own for the servers, allowed that bucket only. Every step can be
# repeated, so the one-shot runs on every `docker compose up` and changes nothing the second time.
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${S3_BUCKET:?}"
: "${S3_ACCESS_KEY_ID:?}" "${S3_SECRET_ACCESS_KEY:?}"
# Deleted or overwritten recordings stay restorable this long (days), then the store drops them.
NONCURRENT_DAYS="${S3_NONCURRENT_VERSION_DAYS:-30}"
endpoint="${MINIO_ENDPOINT:-http://minio:9000}"
policy="meetings-recordings"

# The root credentials are used here only, never by the servers.
mc alias set store "$endpoint" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null

mc mb --ignore-existing "store/$S3_BUCKET"
# Versioning is half of the backup (docs/production.md): a deleted or overwritten object keeps
# its previous version, and replication (mc replicate) needs it.
mc version enable "store/$S3_BUCKET"
# The whole lifecycle configuration at once (import replaces it): the same after every run.
mc ilm import "store/$S3_BUCKET" <<EOF
{"Rules": [{"ID": "noncurrent-expiry", "Status": "Enabled", "Filter": {"Prefix": ""},
  "NoncurrentVersionExpiration": {"NoncurrentDays": ${NONCURRENT_DAYS}}}]}
EOF

# What server/storage/recording_objects.py calls: HeadBucket, listings and the multipart
# upload listing (the sweeper), and object reads, writes, deletes and multipart uploads.
policy_file="/tmp/$policy.json"
cat >"$policy_file" <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"],
      "Resource": ["arn:aws:s3:::${S3_BUCKET}"]
    },
    {
      "Effect": "Allow",
      "Action": [
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
        "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"
      ],
      "Resource": ["arn:aws:s3:::${S3_BUCKET}/*"]
    }
  ]
}
EOF
mc admin policy create store "$policy" "$policy_file"
rm -f "$policy_file"
# `user add` sets the secret again when the user exists: rotating it is a change in .env and
# another run of this one-shot (docs/production.md, Rotating keys).
mc admin user add store "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY"
# Attaching twice is an error ("already in effect"): that one is success here. `case`, not
# grep: the client image is minimal.
if ! out="$(mc admin policy attach store "$policy" --user "$S3_ACCESS_KEY_ID" 2>&1)"; then
    case "$out" in
        *"already"*) ;;
        *) echo "$out" >&2; exit 1 ;;
    esac
fi
echo "bucket $S3_BUCKET ready for $S3_ACCESS_KEY_ID"
