"""Backups in object storage (a real S3 server, SeaweedFS, on loopback), encrypted with age (checked against
Debian's age CLI), on the embedded PostgreSQL 18."""

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from botocore.exceptions import ClientError
from django.core.management.base import CommandError

from dbops.cluster import free_port
from dbops.encryption import AGE_MAGIC
from tests.dbdata import command, snapshot
from tests.helpers import PROJECT_DIR, child_env, manage
from tests.s3server import R2_BUCKET

AGE = shutil.which("age")
needs_age = pytest.mark.skipif(AGE is None, reason="Debian's age CLI is not installed (apt-get install age)")


@pytest.fixture
def bucket(s3_env, settings):
    name = s3_env.new_bucket()
    settings.BACKUP_DIR = f"s3://{name}/nightly"
    return name


@pytest.fixture
def age_key(tmp_path, monkeypatch):
    """A key made by generate_backup_key: recipients exported, identity file kept aside."""
    identity = tmp_path / "key.txt"
    out = command("generate_backup_key", "--output", str(identity))
    recipient = out.split("BACKUP_AGE_RECIPIENTS: ")[1].strip()
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", recipient)
    return identity, recipient


def archive_keys(s3, bucket):
    return [key for key in s3.keys(bucket) if not key.endswith(".json")]


# --- round trips --------------------------------------------------------------------------------


def test_backup_list_and_restore_through_object_storage(pg_server, app_db, url, bucket, s3_env):
    original = snapshot(pg_server, app_db)
    output = command("backup_db", "--url", url)
    (key,) = archive_keys(s3_env, bucket)
    assert key.startswith(f"nightly/{app_db}-") and key.endswith("Z.dump")
    assert f"to s3://{bucket}/{key} (" in output and "3 tables, 507 rows" in output
    manifest = json.loads(s3_env.client().get_object(Bucket=bucket, Key=key + ".json")["Body"].read())
    assert manifest["tables"] == {"archive.old_birds": 2, "public.birds": 5, "public.sightings": 500}
    assert manifest["encrypted"] is False

    listing = command("list_backups")
    assert key.split("/")[1] in listing and "size ok" in listing

    pg_server.execute("DELETE FROM sightings; UPDATE birds SET name = 'changed'", database=app_db)
    restored = command("restore_db", "--url", url, "--noinput")
    assert f"Restored s3://{bucket}/{key} into" in restored
    assert "row counts match the manifest" in restored
    assert snapshot(pg_server, app_db) == original
    # The safety backup of what was there went to object storage too.
    (safety,) = [k for k in archive_keys(s3_env, bucket) if "-pre-restore" in k]
    assert f"Safety backup of the previous contents: s3://{bucket}/{safety}" in restored


def test_restore_an_explicit_object_url_into_a_new_database(pg_server, app_db, url, bucket, s3_env):
    command("backup_db", "--url", url)
    (key,) = archive_keys(s3_env, bucket)
    new_name = f"{app_db}_copy"
    try:
        command("restore_db", f"s3://{bucket}/{key}", "--url", pg_server.url(new_name), "--noinput", "--create")
        assert snapshot(pg_server, new_name) == snapshot(pg_server, app_db)
    finally:
        pg_server.drop_database(new_name)


def test_backup_all_and_keep_in_object_storage(pg_server, app_db, url, bucket, s3_env):
    command("backup_db", "--url", url, "--all")
    databases = {key.split("/")[1].rsplit("-", 1)[0] for key in archive_keys(s3_env, bucket)}
    assert {app_db, "postgres"} <= databases
    time.sleep(1.1)  # names carry the second
    output = command("backup_db", "--url", url, "--keep", "1")
    mine = [key for key in archive_keys(s3_env, bucket) if key.startswith(f"nightly/{app_db}-")]
    assert len(mine) == 1 and f"Deleted old backup s3://{bucket}/nightly/{app_db}-" in output
    assert f"{mine[0]}.json" in s3_env.keys(bucket)


def test_output_still_writes_one_local_file(pg_server, app_db, url, bucket, s3_env, tmp_path):
    command("backup_db", "--url", url, "--output", str(tmp_path / "here.dump"))
    assert (tmp_path / "here.dump").read_bytes().startswith(b"PGDMP")
    assert s3_env.keys(bucket) == []


def test_an_r2_round_trip_as_the_readme_sets_it_up(pg_server, app_db, url, r2_server, tmp_path):
    """Cloudflare's own R2 (miniflare), region auto: backup, list, restore, verify, retention."""
    identity = tmp_path / "key.txt"
    recipient = command("generate_backup_key", "--output", str(identity)).split("BACKUP_AGE_RECIPIENTS: ")[1].strip()
    location = f"s3://{R2_BUCKET}/{app_db}"  # the bucket lives as long as the session: a prefix per test
    assert r2_server.env()["AWS_DEFAULT_REGION"] == "auto"
    env = child_env(**r2_server.env(BACKUP_DIR=location, DATABASE_URL=url, BACKUP_AGE_RECIPIENTS=recipient))
    original = snapshot(pg_server, app_db)

    first = manage("backup_db", env=env)
    assert first.returncode == 0 and f"to {location}/{app_db}-" in first.stdout, first.stderr
    listing = manage("list_backups", env=env)
    assert listing.returncode == 0 and ".dump.age" in listing.stdout and "size ok" in listing.stdout

    pg_server.execute("DELETE FROM sightings", database=app_db)
    env["BACKUP_AGE_IDENTITY"] = str(identity)
    restored = manage("restore_db", "--noinput", env=env)
    assert restored.returncode == 0 and "row counts match the manifest" in restored.stdout, restored.stderr
    assert snapshot(pg_server, app_db) == original
    verified = manage("verify_backup", env=env)
    assert verified.returncode == 0 and verified.stdout.startswith(f"OK: {location}/{app_db}-"), verified.stderr

    pruned = manage("backup_db", "--keep", "1", env=env)
    assert pruned.returncode == 0 and f"Deleted old backup {location}/{app_db}-" in pruned.stdout, pruned.stderr
    kept = [key for key in r2_server.keys(R2_BUCKET) if key.startswith(f"{app_db}/") and "-pre-restore" not in key]
    (newest,) = [key for key in kept if not key.endswith(".json")]
    assert kept == [newest, f"{newest}.json"] and f"to {location}/{newest.split('/')[1]} (" in pruned.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}, "AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID"),
        ({"AWS_ACCESS_KEY_ID": "unknown-r2-key"}, "the server does not know this AWS_ACCESS_KEY_ID"),
    ],
    ids=["wrong-secret", "unknown-key"],
)
def test_r2_refuses_wrong_credentials_in_one_line(r2_server, change, message):
    location = f"s3://{R2_BUCKET}/nightly"
    result = manage("list_backups", env=child_env(**r2_server.env(BACKUP_DIR=location, **change)))
    (line,) = result.stderr.splitlines()
    assert result.returncode == 1 and line.startswith(f"CommandError: Backup location {location}: ")
    assert message in line and "wrong-secret-value" not in line and r2_server.secret_key not in line


# --- encryption ---------------------------------------------------------------------------------


def test_encrypted_remote_round_trip_needs_the_identity(pg_server, app_db, url, bucket, s3_env, age_key, monkeypatch):
    identity, recipient = age_key
    original = snapshot(pg_server, app_db)
    command("backup_db", "--url", url)
    (key,) = archive_keys(s3_env, bucket)
    assert key.endswith(".dump.age")
    stored = s3_env.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored.startswith(AGE_MAGIC) and b"Grackle" not in stored
    manifest = json.loads(s3_env.client().get_object(Bucket=bucket, Key=key + ".json")["Body"].read())
    assert (manifest["encrypted"], manifest["recipients"]) == (True, [recipient])
    assert "AGE-SECRET-KEY" not in json.dumps(manifest)

    pg_server.execute("DELETE FROM sightings", database=app_db)
    changed = snapshot(pg_server, app_db)
    with pytest.raises(CommandError, match="is encrypted with age: set BACKUP_AGE_IDENTITY"):
        command("restore_db", "--url", url, "--noinput")
    other = identity.with_name("other.txt")
    command("generate_backup_key", "--output", str(other))
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(other))
    with pytest.raises(CommandError, match="none of the keys in BACKUP_AGE_IDENTITY can open it"):
        command("restore_db", "--url", url, "--noinput")
    assert snapshot(pg_server, app_db) == changed

    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    output = command("restore_db", "--url", url, "--noinput")
    assert snapshot(pg_server, app_db) == original
    # The safety backup is encrypted too: only public keys were needed to make it.
    (safety,) = [k for k in archive_keys(s3_env, bucket) if "-pre-restore" in k]
    assert safety.endswith(".age") and safety in output


@needs_age
def test_debian_age_decrypts_a_local_backup_that_raw_pg_restore_reads(pg_server, app_db, url, tmp_path, age_key,
                                                                      settings, zstd_bin_dir):
    identity, _ = age_key
    settings.BACKUP_DIR = tmp_path / "backups"
    command("backup_db", "--url", url)
    (encrypted,) = (tmp_path / "backups").glob("*.dump.age")
    plain = tmp_path / "plain.dump"
    subprocess.run([AGE, "-d", "-i", str(identity), "-o", str(plain), str(encrypted)], check=True)
    assert plain.read_bytes().startswith(b"PGDMP")
    with pg_server.database("fresh") as fresh:
        # The tutorial's pg_restore, from a build that reads zstd (backup_db's default compression).
        pg_server.run_tool("pg_restore", "--no-owner", "--no-acl", "-d", fresh, str(plain), bin_dir=zstd_bin_dir)
        assert snapshot(pg_server, fresh) == snapshot(pg_server, app_db)


@needs_age
def test_files_encrypted_by_debian_age_restore_with_restore_db(pg_server, app_db, url, tmp_path, age_key,
                                                               monkeypatch):
    identity, recipient = age_key
    plain = tmp_path / "tutorial.dump"
    pg_server.run_tool("pg_dump", "--format=custom", "--file", str(plain), app_db)
    subprocess.run([AGE, "-r", recipient, "-o", str(tmp_path / "tutorial.dump.age"), str(plain)], check=True)
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    with pg_server.database("fresh") as fresh:
        command("restore_db", str(tmp_path / "tutorial.dump.age"), "--url", pg_server.url(fresh), "--noinput")
        assert snapshot(pg_server, fresh) == snapshot(pg_server, app_db)


def stream_backup(url, path, **env):
    """backup_db --output - > path, as a shell does it."""
    with open(path, "wb") as sink:
        return subprocess.run(
            [sys.executable, "manage.py", "backup_db", "--url", url, "--output", "-"],
            cwd=PROJECT_DIR,
            env=child_env(**env),
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
        )


@needs_age
def test_output_dash_is_encrypted_to_the_recipients(pg_server, app_db, url, tmp_path, age_key, zstd_bin_dir):
    identity, recipient = age_key
    streamed = tmp_path / "stream.dump.age"
    result = stream_backup(url, streamed, BACKUP_AGE_RECIPIENTS=recipient)
    assert result.returncode == 0, result.stderr
    assert streamed.read_bytes().startswith(AGE_MAGIC)
    plain = tmp_path / "plain.dump"
    subprocess.run([AGE, "-d", "-i", str(identity), "-o", str(plain), str(streamed)], check=True)
    listing = pg_server.run_tool("pg_restore", "--list", str(plain), bin_dir=zstd_bin_dir).stdout
    assert "TABLE DATA public sightings" in listing


def test_output_dash_with_a_bad_recipient_is_a_one_line_error_and_writes_nothing(url, tmp_path):
    streamed = tmp_path / "stream.dump.age"
    result = stream_backup(url, streamed, BACKUP_AGE_RECIPIENTS="age1notakey")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "BACKUP_AGE_RECIPIENTS holds a key that is not an age public key" in line
    assert streamed.read_bytes() == b""


def test_generate_backup_key_prints_an_identity_file_and_its_recipient(tmp_path):
    result = manage("generate_backup_key")
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1].startswith("AGE-SECRET-KEY-1")
    recipient = result.stderr.split("BACKUP_AGE_RECIPIENTS: ")[1].strip()
    assert f"# public key: {recipient}" in result.stdout
    if AGE:
        key = tmp_path / "key.txt"
        key.write_text(result.stdout)
        sealed = subprocess.run([AGE, "-r", recipient], input=b"hello", capture_output=True, check=True).stdout
        opened = subprocess.run([AGE, "-d", "-i", str(key)], input=sealed, capture_output=True, check=True)
        assert opened.stdout == b"hello"


def test_a_bad_recipient_is_a_one_line_error(pg_server, app_db, url, tmp_path, settings, monkeypatch):
    settings.BACKUP_DIR = tmp_path / "backups"
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", "age1notakey")
    with pytest.raises(CommandError, match="BACKUP_AGE_RECIPIENTS holds a key that is not an age public key"):
        command("backup_db", "--url", url)
    assert [p for p in (tmp_path / "backups").iterdir() if not p.name.endswith(".lock")] == []


# --- tampering and failures ---------------------------------------------------------------------


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_tampered_object_is_refused_and_nothing_changes(pg_server, app_db, url, bucket, s3_env, tmp_path,
                                                          monkeypatch, encrypted):
    if encrypted:
        identity = tmp_path / "key.txt"
        out = command("generate_backup_key", "--output", str(identity))
        monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", out.split("BACKUP_AGE_RECIPIENTS: ")[1].strip())
        monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    command("backup_db", "--url", url, "--compress", "0")
    (key,) = archive_keys(s3_env, bucket)
    s3 = s3_env.client()
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    pg_server.execute("DELETE FROM sightings", database=app_db)
    before = snapshot(pg_server, app_db)
    # Plain: the checksum in the manifest; encrypted: age's authentication, chunk by chunk.
    with pytest.raises(CommandError, match="is damaged or was changed"):
        command("restore_db", "--url", url, "--noinput")
    assert snapshot(pg_server, app_db) == before
    assert not [k for k in archive_keys(s3_env, bucket) if "-pre-restore" in k]


def test_an_interrupted_upload_leaves_no_object(pg_server, app_db, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    add_incompressible_table(pg_server, app_db)
    env = child_env(BACKUP_DIR=f"s3://{bucket}/nightly", **s3_server.env())
    backup = subprocess.Popen(
        [sys.executable, "manage.py", "backup_db", "--url", pg_server.url(app_db), "--compress", "0"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    s3 = s3_server.client()
    deadline = time.monotonic() + 60
    while backup.poll() is None and time.monotonic() < deadline:
        if s3.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            psutil.Process(backup.pid).kill()
            break
        time.sleep(0.05)
    backup.wait()
    assert backup.returncode == -9, "the backup finished before its upload could be interrupted"
    # Only the killed run's lock object, which the next run on this machine takes over (its process is gone).
    assert s3_server.keys(bucket) == [f"nightly/.{app_db}.lock"]
    listing = manage("list_backups", env=env)
    assert "No backups in" in listing.stdout
    assert manage("backup_db", "--url", pg_server.url(app_db), env=env).returncode == 0
    assert f"nightly/.{app_db}.lock" not in s3_server.keys(bucket)


def test_pg_dump_failing_mid_backup_uploads_nothing(pg_server, app_db, url, bucket, s3_env):
    add_incompressible_table(pg_server, app_db)
    env = child_env(BACKUP_DIR=f"s3://{bucket}/nightly", **s3_env.env())
    backup = subprocess.Popen(
        [sys.executable, "manage.py", "backup_db", "--url", url, "--compress", "0"],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    killed = False
    while backup.poll() is None and not killed:
        for child in psutil.Process(backup.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                if child.name() == "pg_dump" and "--snapshot" in " ".join(child.cmdline()):
                    child.kill()  # while it dumps: the archive is spooled, not yet uploaded
                    killed = True
    _, stderr = backup.communicate(timeout=60)
    assert killed, stderr
    assert backup.returncode == 1
    assert stderr.startswith("CommandError: pg_dump failed") and "Traceback" not in stderr
    assert s3_env.keys(bucket) == []
    assert not s3_env.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


def add_incompressible_table(pg_server, database):
    """About 40 MB that compression cannot shrink, so an upload takes several parts and some time."""
    pg_server.execute(
        "CREATE TABLE noise AS SELECT g, decode(string_agg(md5(g::text || i::text), ''), 'hex') AS bytes "
        "FROM generate_series(1, 20000) g, generate_series(1, 128) i GROUP BY g",
        database=database,
    )


# --- the lock: one backup of a database into a bucket at a time ---------------------------------


def lock_key(database):
    return f"nightly/.{database}.lock"


def test_a_second_backup_into_the_bucket_while_one_runs_is_refused(pg_server, app_db, url, bucket, s3_env):
    command("backup_db", "--url", url)
    before = s3_env.keys(bucket)
    env = child_env(BACKUP_DIR=f"s3://{bucket}/nightly", **s3_env.env())
    blocker = pg_server.connect(app_db)
    blocker.autocommit = False
    blocker.cursor().execute("LOCK TABLE birds IN ACCESS EXCLUSIVE MODE")  # the first backup's pg_dump waits
    first = subprocess.Popen(
        [sys.executable, "manage.py", "backup_db", "--url", url],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while lock_key(app_db) not in s3_env.keys(bucket) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        second = manage("backup_db", "--url", url, env=env)
    finally:
        blocker.rollback()
        blocker.close()
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert second.returncode == 1 and second.stdout == ""
    (line,) = second.stderr.splitlines()
    assert line.startswith(
        f"CommandError: Another backup of '{app_db}' into s3://{bucket}/nightly is running (process {first.pid} on "
        f"{socket.gethostname()}, since "
    )
    assert line.endswith("); try again when it ends.")
    (made,) = [key for key in s3_env.keys(bucket) if key not in before and not key.endswith(".json")]
    assert f"to s3://{bucket}/{made} (" in stdout
    assert sorted(set(s3_env.keys(bucket)) - set(before)) == [made, made + ".json"]  # the lock object is gone


def put_lock(s3_env, bucket, database, host, pid, age):
    since = (datetime.now(UTC) - age).isoformat(timespec="seconds")
    body = json.dumps({"host": host, "pid": pid, "since": since, "token": "left-behind"})
    s3_env.client().put_object(Bucket=bucket, Key=lock_key(database), Body=body.encode())


def ended_process() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize(
    "host, age",
    [("another-machine", timedelta(hours=7)), ("this machine, a process that ended", timedelta(minutes=1))],
)
def test_a_stale_lock_object_is_taken_over(pg_server, app_db, url, bucket, s3_env, host, age):
    pid = ended_process() if host.startswith("this machine") else 4242
    put_lock(s3_env, bucket, app_db, socket.gethostname() if host.startswith("this machine") else host, pid, age)
    output = command("backup_db", "--url", url)
    assert output.startswith("Backed up ")
    keys = s3_env.keys(bucket)
    assert lock_key(app_db) not in keys and len(archive_keys(s3_env, bucket)) == 1


def test_a_fresh_lock_object_of_another_machine_is_respected(pg_server, app_db, url, bucket, s3_env):
    put_lock(s3_env, bucket, app_db, "another-machine", 4242, timedelta(hours=5))
    with pytest.raises(CommandError) as refused:
        command("backup_db", "--url", url)
    assert str(refused.value).startswith(
        f"Another backup of '{app_db}' into s3://{bucket}/nightly is running (process 4242 on another-machine, since "
    )
    assert s3_env.keys(bucket) == [lock_key(app_db)]  # nothing written, the other run's lock untouched


def test_the_s3_server_honours_conditional_writes(s3_server):
    """The lock's primitive: a put with If-None-Match: * fails where the object exists, one with If-Match
    where it changed."""
    bucket, s3 = s3_server.new_bucket(), s3_server.client()
    first = s3.put_object(Bucket=bucket, Key="lock", Body=b"a", IfNoneMatch="*")
    for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"not-its-etag"'}):
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket=bucket, Key="lock", Body=b"b", **condition)
        assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    s3.put_object(Bucket=bucket, Key="lock", Body=b"c", IfMatch=first["ETag"])
    assert s3.get_object(Bucket=bucket, Key="lock")["Body"].read() == b"c"


# --- errors: one line, naming the location, no secret --------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}, "AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID"),
        ({"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000"}, "the server does not know this AWS_ACCESS_KEY_ID"),
        ({"BACKUP_DIR": "s3://no-such-bucket-here/x"}, "the bucket 'no-such-bucket-here' does not exist"),
    ],
    ids=["wrong-secret", "unknown-key", "missing-bucket"],
)
def test_credentials_and_bucket_errors_are_one_line(s3_server, pg_server, app_db, url, change, message):
    bucket = s3_server.new_bucket()
    location = change.get("BACKUP_DIR", f"s3://{bucket}/nightly")
    env = child_env(**s3_server.env(**{"BACKUP_DIR": location, **change}))
    for argv in (["backup_db", "--url", url], ["list_backups"], ["restore_db", "--url", url, "--noinput"]):
        result = manage(*argv, env=env)
        assert result.returncode == 1, result.stdout
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"CommandError: Backup location {location}") and message in line
        for secret in ("wrong-secret-value", s3_server.secret_key, pg_server.password):
            assert secret not in result.stdout + result.stderr
    assert s3_server.keys(bucket) == []
    if "BACKUP_DIR" in change:
        assert "no-such-bucket-here" not in [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]


def test_the_s3_server_holds_each_key_to_its_permissions(s3_server):
    # What the permission tests rely on: SeaweedFS refuses a read-only key's writes and, with the
    # bucket policy without_delete() sets, a writing key's deletes.
    bucket = s3_server.new_bucket()
    reader = s3_server.read_only().client()
    with pytest.raises(ClientError, match="AccessDenied"):
        reader.put_object(Bucket=bucket, Key="nightly/x.dump", Body=b"x")
    writer = s3_server.without_delete(bucket).client()
    writer.put_object(Bucket=bucket, Key="nightly/x.dump", Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        writer.delete_object(Bucket=bucket, Key="nightly/x.dump")
    assert reader.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    s3_server.client().delete_object(Bucket=bucket, Key="nightly/x.dump")  # the server's own key still may
    assert s3_server.keys(bucket) == []


def test_an_unreachable_endpoint_fails_within_the_timeout(pg_server, app_db, url):
    silent = __import__("socket").socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections, never answers
    port = silent.getsockname()[1]
    try:
        for endpoint, message in (
            (f"http://127.0.0.1:{free_port()}", "cannot reach http://127.0.0.1:"),
            (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port} did not answer within 1 s"),
        ):
            env = child_env(
                BACKUP_DIR="s3://some-bucket/x", AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="a",
                AWS_SECRET_ACCESS_KEY="b", AWS_DEFAULT_REGION="us-east-1", BACKUP_S3_TIMEOUT="1",
            )
            started = time.monotonic()
            result = manage("backup_db", "--url", url, env=env, timeout=60)
            assert time.monotonic() - started < 30
            (line,) = result.stderr.splitlines()
            assert line.startswith("CommandError: Backup location s3://some-bucket/x: ") and message in line
    finally:
        silent.close()


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("s3://", "Malformed object storage URL s3://"),
        ("s3://Bad_Bucket/x", "Malformed object storage URL s3://Bad_Bucket/x"),
        ("s3://AKIAKEY:very-secret@bucket/x", "Malformed object storage URL s3://****@bucket/x: put no credentials"),
        ("gs://bucket/x", "Unsupported backup location gs://bucket/x"),
    ],
)
def test_malformed_locations_are_refused(pg_server, app_db, url, location, message):
    result = manage("backup_db", "--url", url, env=child_env(BACKUP_DIR=location))
    (line,) = result.stderr.splitlines()
    assert result.returncode == 1 and message in line and "very-secret" not in line
