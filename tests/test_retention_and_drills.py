"""Retention (a pure rule, then on real backups), restore drills (verify_backup) and list_backups --max-age."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management.base import CommandError

from dbops.catalog import BackupCatalog
from dbops.manifest import TIMESTAMP_FORMAT, utc_now
from dbops.retention import RetentionPolicy, expired_safety, kept, to_delete
from tests.dbdata import command
from tests.helpers import child_env, manage
from tests.servers import embedded_server


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# A made-up calendar: two a day for most of January 2026, then one a week; the ISO weeks and months
# are what a calendar says (2026-01-04 is a Sunday, 2025-12-29 the Monday of ISO week 1).
CALENDAR = [
    ("b-0101a", at("2026-01-01 03:00")),
    ("b-0101b", at("2026-01-01 21:00")),
    ("b-0103", at("2026-01-03 03:00")),
    ("b-0104", at("2026-01-04 03:00")),
    ("b-0105", at("2026-01-05 03:00")),
    ("b-0110", at("2026-01-10 03:00")),
    ("b-0117", at("2026-01-17 03:00")),
    ("b-0131", at("2026-01-31 03:00")),
    ("b-0201a", at("2026-02-01 03:00")),
    ("b-0201b", at("2026-02-01 04:00")),
    ("b-0202", at("2026-02-02 03:00")),
    ("b-1215", at("2025-12-15 03:00")),
    ("b-1231", at("2025-12-31 03:00")),
]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RetentionPolicy(last=3), {"b-0202", "b-0201b", "b-0201a"}),
        (RetentionPolicy(daily=3), {"b-0202", "b-0201b", "b-0131"}),
        # ISO weeks: 2026-W06 (02-02), W05 (02-01 is a Sunday), W03 (01-17), W02 (01-10).
        (RetentionPolicy(weekly=4), {"b-0202", "b-0201b", "b-0117", "b-0110"}),
        (RetentionPolicy(monthly=3), {"b-0202", "b-0131", "b-1231"}),
        # Only three months have backups: asking for four keeps those three.
        (RetentionPolicy(daily=2, monthly=4), {"b-0202", "b-0201b", "b-0131", "b-1231"}),
        # 2025-12-31 and 2026-01-01 are both in ISO week 2026-W01: its newest is 01-04 (Sunday);
        # 01-31 (Saturday) shares W05 with 02-01. 2025-12-15 is alone in 2025-W51.
        (RetentionPolicy(weekly=10), {"b-0202", "b-0201b", "b-0117", "b-0110", "b-0104", "b-1215"}),
    ],
)
def test_retention_keeps_exactly_the_expected_set(policy, expected):
    assert kept(CALENDAR, policy) == expected
    deleted = to_delete(CALENDAR, policy, protect=None)
    assert set(deleted) == {name for name, _ in CALENDAR} - expected


def test_the_backup_just_made_is_never_deleted():
    late = [*CALENDAR, ("b-made-now-but-clock-wrong", at("2020-01-01 00:00"))]
    made = "b-made-now-but-clock-wrong"
    assert made not in to_delete(late, RetentionPolicy(last=1), protect=made)


def test_safety_backups_expire_after_their_days():
    now = at("2026-02-10 12:00")
    safety = [("s-old", at("2026-02-01 00:00")), ("s-edge", at("2026-02-03 12:01")), ("s-new", at("2026-02-09 00:00"))]
    assert expired_safety(safety, now, days=7, protect=None) == ["s-old"]
    assert expired_safety(safety, now, days=7, protect="s-old") == []


# --- on real backups ----------------------------------------------------------------------------


def place_backups(backup_dir, app_db, url, stamps, kind=""):
    """Real backups with made-up times in their names (the manifest says the same time)."""
    for stamp in stamps:
        path = backup_dir / f"{app_db}-{stamp}{kind}.dump"
        command("backup_db", "--url", url, "--output", str(path))


def test_keep_daily_on_real_backups_with_dry_run_first(pg_server, app_db, url, backup_dir):
    midnight = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)

    def stamp(days_ago, hour):
        return (midnight - timedelta(days=days_ago) + timedelta(hours=hour)).strftime(TIMESTAMP_FORMAT)

    kept_names = {f"{app_db}-{stamp(1, 5)}.dump", f"{app_db}-{stamp(2, 5)}.dump"}
    gone_names = {f"{app_db}-{stamp(1, 2)}.dump", f"{app_db}-{stamp(3, 5)}.dump", f"{app_db}-{stamp(9, 5)}.dump"}
    place_backups(backup_dir, app_db, url, [stamp(1, 5), stamp(2, 5), stamp(1, 2), stamp(3, 5), stamp(9, 5)])
    place_backups(backup_dir, app_db, url, [stamp(8, 0), stamp(2, 0)], kind="-pre-restore")
    gone_names.add(f"{app_db}-{stamp(8, 0)}-pre-restore.dump")
    names_before = sorted(p.name for p in backup_dir.iterdir())

    preview = command("backup_db", "--url", url, "--keep-daily", "3", "--dry-run")
    assert sorted(p.name for p in backup_dir.iterdir()) == names_before  # nothing made, nothing deleted
    would = {line.split("/")[-1] for line in preview.splitlines() if line.startswith("Would delete")}
    assert would == gone_names

    output = command("backup_db", "--url", url, "--keep-daily", "3")
    deleted = {line.split("/")[-1] for line in output.splitlines() if line.startswith("Deleted old backup")}
    assert deleted == gone_names
    remaining = {b.name for b in BackupCatalog(archive_location(backup_dir)).backups(app_db)}
    (made_now,) = remaining - kept_names - {f"{app_db}-{stamp(2, 0)}-pre-restore.dump"}
    assert made_now.startswith(f"{app_db}-{midnight.strftime('%Y%m%d')}T")
    assert {p.name for p in backup_dir.glob("*.json")} == {f"{name}.json" for name in remaining}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--keep", "1"], "--keep deletes"),
        (["--keep-daily", "3", "--keep-monthly", "2"], "--keep-daily and --keep-monthly delete"),
        (["--keep-safety-days", "7"], "--keep-safety-days deletes"),
        (["--keep", "1", "--dry-run"], "--keep deletes"),
    ],
)
@pytest.mark.parametrize("output", ["hand.dump", "-"])
def test_retention_with_output_is_refused_before_anything_is_written(app_db, url, backup_dir, options, named, output):
    place_backups(backup_dir, app_db, url, ["20200101T000000.000000Z", "20200102T000000.000000Z"])
    before = sorted(p.name for p in backup_dir.iterdir())
    path = str(backup_dir.parent / output) if output != "-" else output

    result = manage("backup_db", "--url", url, "--output", path, *options, env=child_env(BACKUP_DIR=backup_dir))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"CommandError: {named} old backups in BACKUP_DIR, and --output writes a file outside it: drop "
        f"{named.rsplit(' ', 1)[0]}, or drop --output to back up into BACKUP_DIR.\n"
    )
    assert sorted(p.name for p in backup_dir.iterdir()) == before
    assert not (backup_dir.parent / "hand.dump").exists()


def test_dry_run_with_output_says_that_nothing_would_be_deleted(app_db, url, backup_dir):
    place_backups(backup_dir, app_db, url, ["20200101T000000.000000Z"], kind="-pre-restore")  # expired
    path = backup_dir.parent / "hand.dump"
    output = command("backup_db", "--url", url, "--output", str(path), "--dry-run")
    assert output == f"A backup to {path} would delete no backup (only BACKUP_DIR's expire).\n"
    assert "Would delete" in command("backup_db", "--url", url, "--dry-run")  # into BACKUP_DIR it would


def archive_location(folder):
    from dbops.storage import LocalFolder

    return LocalFolder(folder)


# --- verify_backup ------------------------------------------------------------------------------


def test_verify_backup_restores_into_a_scratch_database_and_drops_it(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    databases_before = pg_server.execute("SELECT datname FROM pg_database ORDER BY 1")
    result = manage("verify_backup", env=child_env(DATABASE_URL=url, BACKUP_DIR=backup_dir))
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("OK: ") and "3 tables, 507 rows, every count matches the manifest" in line
    assert pg_server.execute("SELECT datname FROM pg_database ORDER BY 1") == databases_before

    as_json = manage("verify_backup", "--json", env=child_env(DATABASE_URL=url, BACKUP_DIR=backup_dir))
    verdict = json.loads(as_json.stdout)
    assert verdict["matches"] is True and verdict["restored"] == verdict["expected"]
    assert verdict["expected"] == {"archive.old_birds": 2, "public.birds": 5, "public.sightings": 500}


def test_verify_backup_catches_rows_that_do_not_match_the_manifest(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    (manifest_path,) = backup_dir.glob("*.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["public.birds"] = 6  # the archive holds 5 birds
    manifest_path.write_text(json.dumps(manifest))
    env = child_env(DATABASE_URL=url, BACKUP_DIR=backup_dir)

    result = manage("verify_backup", env=env)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "MISMATCH" in line and "public.birds: 6 in the manifest, 5 restored" in line
    as_json = manage("verify_backup", "--json", env=env)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["differences"] == ["public.birds: 6 in the manifest, 5 restored"]
    assert not [row for row in pg_server.execute("SELECT datname FROM pg_database") if row[0].startswith("verify_")]


def test_verify_backup_on_another_instance_from_object_storage_encrypted(pg_server, app_db, url, s3_env, settings,
                                                                         tmp_path, monkeypatch):
    bucket = s3_env.new_bucket()
    settings.BACKUP_DIR = f"s3://{bucket}/x"
    identity = tmp_path / "key.txt"
    out = command("generate_backup_key", "--output", str(identity))
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", out.split("BACKUP_AGE_RECIPIENTS: ")[1].strip())
    command("backup_db", "--url", url)
    (key,) = [k for k in s3_env.keys(bucket) if not k.endswith(".json")]
    with pytest.raises(CommandError, match="set BACKUP_AGE_IDENTITY"):
        command("verify_backup", f"s3://{bucket}/{key}", "--url", pg_server.url("postgres"))
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    output = command("verify_backup", f"s3://{bucket}/{key}", "--url", pg_server.url("postgres"))
    assert output.startswith(f"OK: s3://{bucket}/{key} restored")


def test_verify_backup_with_an_empty_url_is_refused(pg_server, app_db, url, backup_dir):
    # What `--url "$(python manage.py localdb url)"` gives when localdb was never set up.
    command("backup_db", "--url", url)
    result = manage("verify_backup", "--url", "", env=child_env(DATABASE_URL=url, BACKUP_DIR=backup_dir))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("CommandError: --url is empty (an unset shell variable?)")


def test_verify_backup_without_createdb_says_that_url_to_a_localdb_server_avoids_it(pg_server, app_db, url,
                                                                                    backup_dir):
    command("backup_db", "--url", url)
    pg_server.execute(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'drill_owner') THEN "
        "CREATE ROLE drill_owner LOGIN PASSWORD 'drill-pass' NOCREATEDB; END IF; END$$"
    )
    pg_server.execute(f'ALTER DATABASE "{app_db}" OWNER TO drill_owner')
    owner_url = pg_server.url(app_db, user="drill_owner", password="drill-pass")
    (backup,) = backup_dir.glob("*.dump")
    databases_before = pg_server.execute("SELECT datname FROM pg_database ORDER BY 1")

    refused = manage("verify_backup", str(backup), env=child_env(DATABASE_URL=owner_url, BACKUP_DIR=backup_dir))

    assert refused.returncode == 1
    (line,) = refused.stderr.splitlines()
    assert line == (
        "CommandError: A restore drill restores into a scratch database, and the role 'drill_owner' may not create "
        f"databases on postgresql://drill_owner:****@127.0.0.1:{pg_server.port}/{app_db} (no CREATEDB). Run the "
        "drill on a server of your own instead: `python manage.py localdb start`, then `python manage.py "
        'verify_backup --url "$(python manage.py localdb url --show-password)"`. Nothing was changed.'
    )
    assert pg_server.execute("SELECT datname FROM pg_database ORDER BY 1") == databases_before
    elsewhere = manage(
        "verify_backup", str(backup), "--url", pg_server.url("postgres"),
        env=child_env(DATABASE_URL=owner_url, BACKUP_DIR=backup_dir),
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert elsewhere.stdout.startswith(f"OK: {backup} restored into a scratch database; 3 tables, 507 rows")


def test_verify_backup_without_a_manifest_says_so(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url, "--output", str(backup_dir / "hand.dump"))
    (backup_dir / "hand.dump.json").unlink()
    with pytest.raises(CommandError, match="has no manifest"):
        command("verify_backup", str(backup_dir / "hand.dump"), "--url", url)


# --- list_backups --max-age ---------------------------------------------------------------------


def test_max_age_exits_non_zero_when_the_newest_backup_is_too_old_or_missing(pg_server, app_db, url, backup_dir):
    env = child_env(DATABASE_URL=url, BACKUP_DIR=backup_dir)
    missing = manage("list_backups", "--max-age", "26h", env=env)
    assert missing.returncode == 1 and f"No backup of {app_db} on 127.0.0.1:{pg_server.port}" in missing.stderr

    old = (utc_now() - timedelta(hours=30)).strftime(TIMESTAMP_FORMAT)
    place_backups(backup_dir, app_db, url, [old])
    stale = manage("list_backups", "--max-age", "26h", env=env)
    assert stale.returncode == 1 and "30.0 h old, older than 26.0 h" in stale.stderr

    command("backup_db", "--url", url)
    fresh = manage("list_backups", "--max-age", "26h", env=env)
    assert fresh.returncode == 0 and "fresh enough" in fresh.stdout


def test_max_age_counts_only_backups_of_that_database_from_that_server(pg_server, app_db, url, backup_dir):
    with embedded_server() as server_b:
        server_b.execute(f'CREATE DATABASE "{app_db}"')
        url_b = server_b.url(app_db)
        command("backup_db", "--url", url)  # a fresh backup of server A's database only
        env = child_env(DATABASE_URL=url_b, BACKUP_DIR=backup_dir)

        for_b = manage("list_backups", "--max-age", "26h", env=env)
        for_b_by_url = manage("list_backups", "--max-age", "26h", "--url", url_b, env=env)
        for_a = manage("list_backups", "--max-age", "26h", "--url", url, env=env)
        for_a_by_name = manage("list_backups", app_db, "--max-age", "26h", "--url", pg_server.url(), env=env)

    for result in (for_b, for_b_by_url):
        assert result.returncode == 1, result.stdout
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"CommandError: No backup of {app_db} on 127.0.0.1:{server_b.port} in ")
        assert "(only 1 from elsewhere" in line
    for result in (for_a, for_a_by_name):
        assert result.returncode == 0, result.stderr
        assert f"The newest backup of {app_db} on 127.0.0.1:{pg_server.port} (" in result.stdout
        assert "old: fresh enough (the same server by system identifier)." in result.stdout


def test_list_backups_reports_an_archive_without_its_manifest(pg_server, app_db, url, backup_dir):
    command("backup_db", "--url", url)
    (manifest_path,) = backup_dir.glob("*.json")
    manifest_path.unlink()
    output = command("list_backups")
    assert "no manifest" in output and "1 archive(s) without a manifest" in output
