"""Input that used to end in a traceback, or echo a secret: one line, exit 1, nothing changed."""
import json
import os

import pyrage
import pytest
from pyrage import passphrase, x25519

from tests.dbdata import snapshot
from tests.helpers import child_env, manage


def assert_one_line(result, start, *secrets):
    assert result.returncode == 1, result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith(start), result.stderr
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "start", "secrets"),
    [
        (
            "postgresql://u:p@ss/w:rd@db.example.com/birds",
            "CommandError: The database URL does not parse: @ / : % # ? in a password must be percent-encoded",
            ("w:rd", "ss/", "db.example.com"),
        ),
        (
            "postgresql://u:hunter22@db.example.com/birds?connect_timeout=abc",
            "CommandError: connect_timeout in the database URL must be a whole number of seconds",
            ("hunter22",),
        ),
        (
            "postgresql://u:hunter22@db.example.com/birds%00",
            "CommandError: The database URL holds a NUL character (%00)",
            ("hunter22",),
        ),
        (
            "postgresql://u:hunter22@db.example.com/birds?sslpassword=keyphrase99&keepalives=1",
            "CommandError: The database URL has the option(s) keepalives, sslpassword, which pg_dump and psql "
            "cannot be given",
            ("hunter22", "keyphrase99"),
        ),
    ],
    ids=["unencoded-password", "connect-timeout", "nul", "no-pg-variable"],
)
def test_a_database_url_the_tools_cannot_use_is_one_line_without_its_parts(url, start, secrets):
    for where in (["--url", url], ["--url-env", "SOME_URL"]):
        assert_one_line(manage("db_info", *where, env=child_env(SOME_URL=url)), start, *secrets)


def test_url_env_reads_the_url_from_the_environment(pg_server, app_db):
    result = manage("db_info", "--url-env", "OLD_URL", env=child_env(OLD_URL=pg_server.url(app_db)))
    assert result.returncode == 0, result.stderr
    assert app_db in result.stdout


def test_url_env_naming_an_unset_variable_says_so(pg_server):
    result = manage("copy_db", "--from-env", "OLD_URL", "--to-env", "NEW_URL", env=child_env(NEW_URL=pg_server.url()))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "manage.py copy_db: error: argument --from-env: the environment variable OLD_URL is not set (or empty)."
    )


@pytest.mark.parametrize("age", ["99999999999999d", "99999d"])
def test_a_max_age_beyond_any_date_is_refused(age):
    result = manage("list_backups", "--max-age", age)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"manage.py list_backups: error: argument --max-age: '{age}' is more than 36500 days"
    )
    assert "Traceback" not in result.stderr


def test_localdb_data_dir_below_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = manage("localdb", "start", "--data-dir", str(tmp_path / "file" / "sub"))
    assert_one_line(result, f"CommandError: Cannot use {tmp_path / 'file' / 'sub'} as --data-dir: it or a folder "
                            "above it is a file.")


@pytest.fixture
def local_backup(pg_server, app_db, tmp_path):
    """A backup of app_db in its own folder: (its path, the environment that made it)."""
    env = child_env(BACKUP_DIR=tmp_path / "backups")
    result = manage("backup_db", "--url", pg_server.url(app_db), env=env)
    assert result.returncode == 0, result.stderr
    (path,) = (tmp_path / "backups").glob("*.dump")
    return path, env


@pytest.mark.parametrize("tables", [None, ["birds"], {"birds": "3"}])
def test_a_manifest_with_tables_of_the_wrong_type_is_one_line(pg_server, app_db, local_backup, tables):
    path, env = local_backup
    manifest = path.with_name(path.name + ".json")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "tables": tables}))
    before = snapshot(pg_server, app_db)
    expected = f'The manifest {manifest} is not readable ("tables" is not an object); move it away'
    result = manage("restore_db", str(path), "--url", pg_server.url(app_db), "--noinput", env=env)
    assert_one_line(result, f"CommandError: {expected}")
    assert_one_line(manage("verify_backup", str(path), env=env), f"CommandError: {expected}")
    listing = manage("list_backups", env=env)
    assert listing.returncode == 0 and f"Warning: {expected}" in listing.stderr
    assert snapshot(pg_server, app_db) == before


@pytest.fixture
def encrypted_backup(pg_server, app_db, tmp_path):
    identity = x25519.Identity.generate()
    env = child_env(BACKUP_DIR=tmp_path / "backups", BACKUP_AGE_RECIPIENTS=str(identity.to_public()))
    assert manage("backup_db", "--url", pg_server.url(app_db), env=env).returncode == 0
    (path,) = (tmp_path / "backups").glob("*.age")
    return path, str(identity)


def identity_files(tmp_path, key):
    """BACKUP_AGE_IDENTITY values that are not an identity file's path, with the line each must give."""
    protected = tmp_path / "protected.age"
    protected.write_bytes(passphrase.encrypt(f"{key}\n".encode(), "correct horse"))
    armored = tmp_path / "armored.txt"
    armored.write_text("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n")
    binary = tmp_path / "binary.key"
    binary.write_bytes(os.urandom(64) + b"\xff\xfe")
    return {
        key: "CommandError: BACKUP_AGE_IDENTITY must be the path of the identity file, and it looks like a key itself",
        f"  {key.lower()}\n": "CommandError: BACKUP_AGE_IDENTITY must be the path of the identity file",
        str(protected): f"CommandError: The age identity file {protected} (BACKUP_AGE_IDENTITY) is itself encrypted",
        str(armored): f"CommandError: The age identity file {armored} (BACKUP_AGE_IDENTITY) is itself encrypted",
        str(binary): f"CommandError: The age identity file {binary} (BACKUP_AGE_IDENTITY) is not a text file",
    }


def test_an_identity_that_is_not_an_identity_file_is_one_line_and_never_echoes_a_key(
    pg_server, app_db, encrypted_backup, tmp_path
):
    path, key = encrypted_backup
    before = snapshot(pg_server, app_db)
    for value, start in identity_files(tmp_path, key).items():
        env = child_env(BACKUP_DIR=path.parent, BACKUP_AGE_IDENTITY=value)
        result = manage("restore_db", str(path), "--url", pg_server.url(app_db), "--noinput", env=env)
        assert_one_line(result, start, key, key.lower(), key[16:40].lower())
    assert snapshot(pg_server, app_db) == before
    assert pyrage.decrypt(path.read_bytes(), [x25519.Identity.from_str(key)])  # the backup itself is fine


@pytest.mark.parametrize("path", ["s3:/birds/x.dump", "s3:birds/x.dump", "s3//birds/x.dump"])
def test_a_mistyped_object_url_is_not_taken_for_a_local_file(path):
    result = manage("restore_db", path, "--noinput")
    assert_one_line(result, f"CommandError: Malformed object storage URL {path}: write s3://BUCKET/PREFIX")
