"""Keys that may not do everything, and files that cannot be deleted: one line saying what could not be
done, after saying what was.

The object storage tests need a server that checks each key's permissions: SeaweedFS (s3_server), with
its read-only key and its key whose deletes a bucket policy refuses (tests/s3server.py)."""
import uuid

import pytest

from tests.dbdata import snapshot
from tests.helpers import child_env, manage, manage_with_file_permissions


@pytest.fixture(scope="module")
def bucket(s3_server):
    return s3_server.new_bucket()


@pytest.fixture
def prefix(bucket):
    return f"s3://{bucket}/{uuid.uuid4().hex[:8]}"


def objects(server, location):
    bucket, start = location.removeprefix("s3://").split("/", 1)
    return sorted(
        key for key in server.keys(bucket) if key.startswith(start) and not key.endswith((".json", ".lock"))
    )


def assert_one_line(result, start, *secrets):
    (line,) = result.stderr.splitlines()
    assert line.startswith(start), result.stderr
    assert "Traceback" not in result.stderr
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


def test_a_key_without_write_access_is_one_line(s3_server, pg_server, url, prefix):
    reader = s3_server.read_only()
    result = manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=prefix, **reader.env()))
    assert result.returncode == 1
    assert_one_line(result, f"CommandError: Backup location {prefix}/", reader.secret_key, pg_server.password)
    assert result.stderr.rstrip().endswith("access denied: the key may not write to this bucket.")
    assert objects(s3_server, prefix) == []


def test_a_safety_backup_that_cannot_be_written_is_one_line_and_restores_nothing(
    s3_server, pg_server, app_db, url, prefix
):
    assert manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=prefix, **s3_server.env())).returncode == 0
    pg_server.execute("INSERT INTO birds (name) VALUES ('after the backup')", database=app_db)
    before = snapshot(pg_server, app_db)
    reader = s3_server.read_only()
    result = manage("restore_db", "--url", url, "--noinput", env=child_env(BACKUP_DIR=prefix, **reader.env()))
    assert result.returncode == 1
    assert_one_line(result, f"CommandError: Backup location {prefix}/", reader.secret_key)
    assert "access denied: the key may not write to this bucket" in result.stderr
    assert snapshot(pg_server, app_db) == before


def test_a_key_without_delete_access_says_the_backup_was_made_then_what_was_not_deleted(
    s3_server, bucket, pg_server, url, prefix
):
    for _ in range(2):
        assert manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=prefix, **s3_server.env())).returncode == 0
    old = objects(s3_server, prefix)
    writer = s3_server.without_delete(bucket)
    result = manage("backup_db", "--url", url, "--keep", "1", env=child_env(BACKUP_DIR=prefix, **writer.env()))
    assert result.returncode == 1
    (made,) = result.stdout.splitlines()
    assert made.startswith("Backed up postgresql://") and f" to {prefix}/" in made
    assert_one_line(
        result, f"CommandError: Could not delete old backups: Backup location {prefix}/", writer.secret_key
    )
    assert result.stderr.rstrip().endswith(
        "access denied: the key may not delete from this bucket; 2 old backup(s) that retention deletes remain."
    )
    new = [key for key in objects(s3_server, prefix) if key not in old]
    assert len(new) == 1 and made.split(" to ")[1].startswith(f"s3://{bucket}/{new[0]} ")


def test_a_key_without_delete_access_leaves_its_lock_released_for_the_next_backup(
    s3_server, bucket, pg_server, app_db, url, prefix
):
    writer = s3_server.without_delete(bucket)
    assert manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=prefix, **writer.env())).returncode == 0
    lock = f"{prefix.removeprefix(f's3://{bucket}/')}/.{app_db}.lock"
    assert s3_server.client().get_object(Bucket=bucket, Key=lock)["Body"].read() == b""  # released, not deleted
    again = manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=prefix, **writer.env()))
    assert again.returncode == 0, again.stderr
    assert len(objects(s3_server, prefix)) == 2
    assert manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=prefix, **s3_server.env())).returncode == 0
    assert lock not in s3_server.keys(bucket)


def test_a_local_backup_that_cannot_be_deleted_is_one_line_after_the_backup(pg_server, url, tmp_path):
    folder = tmp_path / "backups"
    env = child_env(BACKUP_DIR=folder)
    # A directory archive (--jobs) whose folder may not be written: its files cannot be unlinked.
    assert manage("backup_db", "--url", url, "--jobs", "2", env=env).returncode == 0
    (old,) = [path for path in folder.iterdir() if path.is_dir()]
    old.chmod(0o500)
    try:
        result = manage_with_file_permissions("backup_db", "--url", url, "--keep", "1", env=env)
    finally:
        old.chmod(0o700)
    assert result.returncode == 1, result.stderr
    (made,) = result.stdout.splitlines()
    assert made.startswith("Backed up ") and f" to {folder}/" in made
    assert_one_line(result, f"CommandError: Could not delete old backups: Cannot delete {old}: Permission denied;")
    assert old.is_dir()


def test_a_restore_whose_expired_safety_backup_cannot_be_deleted_says_it_restored_first(
    s3_server, bucket, pg_server, url, prefix
):
    assert manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=prefix, **s3_server.env())).returncode == 0
    (made,) = objects(s3_server, prefix)
    expired = made.replace(made.split("-")[-1], "20200101T000000Z-pre-restore.dump")
    client = s3_server.client()
    for suffix in ("", ".json"):
        client.copy_object(Bucket=bucket, Key=expired + suffix, CopySource={"Bucket": bucket, "Key": made + suffix})
    writer = s3_server.without_delete(bucket)
    result = manage("restore_db", "--url", url, "--noinput", env=child_env(BACKUP_DIR=prefix, **writer.env()))
    assert result.returncode == 1
    route, safety_backup, *_ = result.stdout.splitlines()
    assert route == "Route: in place, in one transaction, after a safety backup (without --swap)."
    assert safety_backup.startswith(f"Safety backup of the previous contents: {prefix}/")
    assert result.stdout.splitlines()[-1].startswith(f"Restored s3://{bucket}/{made} into ")
    assert_one_line(
        result, "CommandError: Could not delete expired safety backups: Backup location "
        f"s3://{bucket}/{expired}: access denied: the key may not delete from this bucket", writer.secret_key,
    )
    assert expired in objects(s3_server, prefix)
