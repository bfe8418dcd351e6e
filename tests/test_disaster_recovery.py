"""Disaster recovery as a Render user runs it (issue 18): one server reached by two URLs, a restore onto a
new instance, safety backups never weaker than the backups beside them, manifests whose archive is gone.

On the embedded PostgreSQL 18, a real S3 server (the s3_env fixture) and real age keys, checked with
Debian's age CLI where it is installed."""

import json
import shutil
import subprocess

import pytest
from django.core.management.base import CommandError

from dbops.encryption import AGE_MAGIC
from tests.dbdata import command, snapshot
from tests.helpers import child_env, manage
from tests.servers import embedded_server

AGE = shutil.which("age")
needs_age = pytest.mark.skipif(AGE is None, reason="Debian's age CLI is not installed (apt-get install age)")


def spelt(url: str, host: str) -> str:
    """The same URL with the host spelt another way (127.0.0.1 as localhost, as Render's two URLs do)."""
    return url.replace("@127.0.0.1:", f"@{host}:", 1)


def system_identifier(server) -> str:
    return server.execute("SELECT system_identifier::text FROM pg_control_system()")[0][0]


def new_key(folder, name="key.txt"):
    """An identity file made by generate_backup_key, and its recipient."""
    identity = folder / name
    out = command("generate_backup_key", "--output", str(identity))
    return identity, out.split("BACKUP_AGE_RECIPIENTS: ")[1].strip()


def age_decrypts(identity, data: bytes) -> bytes:
    return subprocess.run([AGE, "-d", "-i", str(identity)], input=data, capture_output=True, check=True).stdout


@pytest.fixture
def bucket(s3_env, settings):
    """A new bucket; BACKUP_DIR is its nightly/ prefix, as in the README."""
    settings.BACKUP_DIR = f"s3://{(name := s3_env.new_bucket())}/nightly"
    return name


def objects(s3, bucket, *, manifests=False):
    return [key for key in s3.keys(bucket) if key.endswith(".json") == manifests]


# --- one server, two URLs ------------------------------------------------------------------------


def test_a_backup_through_one_spelling_is_found_through_the_other(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    (first,) = backup_dir.glob("*.dump")
    other_url = spelt(url, "localhost")
    env = child_env(DATABASE_URL=other_url, BACKUP_DIR=backup_dir)

    fresh = manage("list_backups", "--max-age", "26h", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert f"The newest backup of {app_db} on localhost:{pg_server.port} ({first.name})" in fresh.stdout
    assert "fresh enough (the same server by system identifier)." in fresh.stdout
    assert "yes, by system identifier" in fresh.stdout  # the listing's THIS SERVER column

    # No "taken from elsewhere" notice in the prompt: it is this server's backup.
    cancelled = manage("restore_db", input="no\n", env=env)
    assert f"with {first}" in cancelled.stdout and "not from this database" not in cancelled.stdout

    pg_server.execute("DELETE FROM sightings", database=app_db)
    restored = manage("restore_db", "--noinput", env=env)
    assert restored.returncode == 0, restored.stderr
    assert f"Restored {first} into" in restored.stdout and snapshot(pg_server, app_db)["public.sightings"]

    verified = manage("verify_backup", env=env)
    assert verified.returncode == 0 and f"OK: {first}" in verified.stdout, verified.stderr

    # Retention through the other spelling counts the first backup as this server's.
    kept = manage("backup_db", "--keep", "1", env=env)
    assert kept.returncode == 0, kept.stderr
    assert f"Deleted old backup {first}" in kept.stdout and not first.exists()


def test_an_ordinary_role_reads_the_system_identifier(pg_server, app_db, backup_dir):
    pg_server.execute("DROP ROLE IF EXISTS plain_owner")
    pg_server.execute("CREATE ROLE plain_owner LOGIN PASSWORD 'plain-pw' NOSUPERUSER NOCREATEDB NOCREATEROLE")
    try:
        with pg_server.database("owned") as owned:
            pg_server.execute(f'ALTER DATABASE "{owned}" OWNER TO plain_owner')
            pg_server.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", database=owned)
            pg_server.execute("ALTER TABLE t OWNER TO plain_owner", database=owned)
            plain_url = pg_server.url(owned, user="plain_owner", password="plain-pw")
            assert pg_server.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'plain_owner'") == [(False,)]

            command("backup_db", "--url", plain_url)
            (manifest,) = backup_dir.glob("*.json")
            assert json.loads(manifest.read_text())["system_identifier"] == system_identifier(pg_server)

            env = child_env(DATABASE_URL=spelt(plain_url, "localhost"), BACKUP_DIR=backup_dir)
            fresh = manage("list_backups", "--max-age", "26h", env=env)
            assert fresh.returncode == 0, fresh.stderr
            assert "(the same server by system identifier)" in fresh.stdout
    finally:
        pg_server.execute("DROP ROLE IF EXISTS plain_owner")


def test_the_address_decides_when_the_server_does_not_answer(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    down = url.replace(f":{pg_server.port}/", ":1/")  # a monitor's check while the server is down
    result = manage("list_backups", "--max-age", "26h", env=child_env(DATABASE_URL=down, BACKUP_DIR=backup_dir))
    assert result.returncode == 1
    assert "backups are matched to the server by host:port alone" in result.stderr
    assert f"No backup of {app_db} on 127.0.0.1:1 in {backup_dir} (only 1 from elsewhere" in result.stderr
    assert "Traceback" not in result.stderr


# --- a restore onto a new instance ---------------------------------------------------------------


def test_latest_of_restores_the_newest_backup_of_that_name_from_any_server(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    (made,) = backup_dir.glob("*.dump")
    listing = command("list_backups")
    assert f"python manage.py restore_db --latest-of {app_db}" in listing

    with embedded_server() as new_instance:
        target = new_instance.url(app_db)
        nothing = manage("restore_db", "--url", target, "--create", "--noinput",
                         env=child_env(BACKUP_DIR=backup_dir))  # fmt: skip
        assert nothing.returncode == 1 and f"add --latest-of {app_db} for the newest" in nothing.stderr

        env = child_env(BACKUP_DIR=backup_dir)
        cancelled = manage("restore_db", "--latest-of", app_db, "--url", target, "--create", input="no\n", env=env)
        assert f"with {made} (custom format)" in cancelled.stdout
        assert f"The backup was taken from {app_db} on 127.0.0.1:{pg_server.port}" in cancelled.stdout

        restored = manage("restore_db", "--latest-of", app_db, "--url", target, "--create", "--noinput", env=env)
        assert restored.returncode == 0, restored.stderr
        assert snapshot(new_instance, app_db) == snapshot(pg_server, app_db)

        both = manage("restore_db", str(made), "--latest-of", app_db, "--url", target, "--noinput", env=env)
        assert both.returncode == 1
        assert both.stderr.strip() == "CommandError: Give either a backup to restore or --latest-of, not both."


# --- safety backups are never weaker than what they sit beside -----------------------------------


@needs_age
def test_the_safety_backup_is_encrypted_to_the_restored_backups_recipients(pg_server, app_db, url, bucket, s3_env,
                                                                           tmp_path, monkeypatch):
    identity, recipient = new_key(tmp_path)
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", recipient)
    command("backup_db", "--url", url)  # the cron job: public key only
    monkeypatch.delenv("BACKUP_AGE_RECIPIENTS")
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))  # the laptop: the identity only
    pg_server.execute("DELETE FROM sightings WHERE id > 100", database=app_db)

    output = command("restore_db", "--url", url, "--noinput")
    (safety,) = [key for key in objects(s3_env, bucket) if "-pre-restore" in key]
    assert safety.endswith(".dump.age") and f"s3://{bucket}/{safety}" in output
    stored = s3_env.client().get_object(Bucket=bucket, Key=safety)["Body"].read()
    assert stored.startswith(AGE_MAGIC)
    assert age_decrypts(identity, stored).startswith(b"PGDMP")
    manifest = json.loads(s3_env.client().get_object(Bucket=bucket, Key=safety + ".json")["Body"].read())
    assert (manifest["encrypted"], manifest["recipients"]) == (True, [recipient])


def test_a_plaintext_safety_backup_beside_encrypted_ones_is_refused_before_anything(pg_server, app_db, url, bucket,
                                                                                   s3_env, tmp_path, monkeypatch):
    _, recipient = new_key(tmp_path)
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", recipient)
    command("backup_db", "--url", url)
    monkeypatch.delenv("BACKUP_AGE_RECIPIENTS")
    plain = tmp_path / "tutorial.dump"
    pg_server.run_tool("pg_dump", "--format=custom", "--file", str(plain), app_db)
    pg_server.execute("DELETE FROM sightings", database=app_db)
    before, stored = snapshot(pg_server, app_db), s3_env.keys(bucket)

    env = child_env(DATABASE_URL=url, BACKUP_DIR=f"s3://{bucket}/nightly", **s3_env.env())
    refused = manage("restore_db", str(plain), "--noinput", env=env)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line == (
        f"CommandError: s3://{bucket}/nightly holds encrypted backups, and the safety backup of "
        f"{url.replace(pg_server.password, '****')} would lie beside them in plaintext: set BACKUP_AGE_RECIPIENTS "
        "to the age public key (age1...) they are encrypted to, or add --no-safety-backup. Nothing was changed."
    )
    assert snapshot(pg_server, app_db) == before and s3_env.keys(bucket) == stored

    # The line's way out works.
    done = manage("restore_db", str(plain), "--noinput", "--no-safety-backup", env=env)
    assert done.returncode == 0, done.stderr


def test_backups_without_recipients_beside_encrypted_ones_are_refused(pg_server, app_db, url, bucket, s3_env,
                                                                      tmp_path, monkeypatch):
    _, recipient = new_key(tmp_path)
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", recipient)
    command("backup_db", "--url", url)
    monkeypatch.delenv("BACKUP_AGE_RECIPIENTS")
    stored = s3_env.keys(bucket)
    for extra in ([], ["--all"]):
        with pytest.raises(CommandError) as refused:
            command("backup_db", "--url", url, *extra)
        assert str(refused.value) == (
            f"s3://{bucket}/nightly holds encrypted backups; this one would lie beside them in plaintext: set "
            "BACKUP_AGE_RECIPIENTS to the age public key (age1...) they are encrypted to, or back up elsewhere "
            "(--output FILE, or another BACKUP_DIR). Nothing was written."
        )
    assert s3_env.keys(bucket) == stored


@pytest.mark.parametrize("value", [" , ", ",", "\n# only a comment\n"])
def test_recipients_set_but_empty_are_an_error(pg_server, app_db, url, backup_dir, value):
    result = manage("backup_db", env=child_env(DATABASE_URL=url, BACKUP_DIR=backup_dir, BACKUP_AGE_RECIPIENTS=value))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("CommandError: BACKUP_AGE_RECIPIENTS is set but holds no key")
    assert "or unset it to store backups unencrypted." in line
    assert not list(backup_dir.glob("*.dump*"))


@needs_age
def test_recipients_in_ages_recipients_file_format(pg_server, app_db, url, backup_dir, tmp_path):
    (first, key_1), (second, key_2) = new_key(tmp_path, "one.txt"), new_key(tmp_path, "two.txt")
    recipients_file = f"# the laptop\n{key_1}\n\n# the password manager's copy\n{key_2}\n"
    env = child_env(DATABASE_URL=url, BACKUP_DIR=backup_dir, BACKUP_AGE_RECIPIENTS=recipients_file)
    result = manage("backup_db", env=env)
    assert result.returncode == 0 and "encrypted to 2 age key(s)" in result.stdout, result.stderr
    (encrypted,) = backup_dir.glob("*.dump.age")
    for identity in (first, second):
        assert age_decrypts(identity, encrypted.read_bytes()).startswith(b"PGDMP")
    assert json.loads(encrypted.with_name(encrypted.name + ".json").read_text())["recipients"] == [key_1, key_2]


# --- a manifest whose archive is gone ------------------------------------------------------------


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_a_manifest_whose_archive_is_gone_is_reported_and_removed_by_retention(pg_server, app_db, url, tmp_path,
                                                                               settings, s3_env, where):
    location = tmp_path / "backups"
    if where == "bucket":
        location = f"s3://{s3_env.new_bucket()}/nightly"
    settings.BACKUP_DIR = location

    def names():
        return sorted(line.split()[0] for line in command("list_backups").splitlines() if line.startswith(app_db))

    command("backup_db", "--url", url)
    command("backup_db", "--url", url)
    older = names()[0]
    if where == "bucket":
        bucket = location.split("/")[2]
        s3_env.client().delete_object(Bucket=bucket, Key=f"nightly/{older}")  # a lifecycle rule's doing
        gone_manifest = f"s3://{bucket}/nightly/{older}.json"
    else:
        (location / older).unlink()
        gone_manifest = str(location / f"{older}.json")

    listed = command("list_backups")
    assert f"1 manifest(s) whose archive is gone (deleted by hand or by a bucket's lifecycle rule): {older}." in listed
    assert older not in names()

    preview = command("backup_db", "--url", url, "--keep", "5", "--dry-run")
    assert f"Would delete {gone_manifest}" in preview
    pruned = command("backup_db", "--url", url, "--keep", "5")
    assert f"Deleted old backup {gone_manifest}" in pruned
    assert "whose archive is gone" not in command("list_backups")
    assert len(names()) == 2
