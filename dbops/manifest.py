"""What a backup is, apart from its bytes: where it came from (Origin), what it held (Manifest), its
name (database, UTC time, kind, format) and the entry a catalog lists for it (BackupFile)."""

import json
import os
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import archive
from .errors import DbOpsError

KIND_BACKUP = "backup"
KIND_SAFETY = "safety"

# UTC to the microsecond, so that names sort by time and backups in the same second differ;
# names of older versions, to the second, are still read. Encrypted backups end in .age.
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
SECONDS_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_PATTERN = re.compile(
    r"^(?P<database>.+)-(?P<stamp>\d{8}T\d{6}(?:\.\d{6})?Z)(?P<safety>-pre-restore)?(?P<suffix>\.\w+)"
    r"(?P<encrypted>\.age)?$"
)
SUFFIX_BY_FORMAT = {archive.CUSTOM: ".dump", archive.DIRECTORY: ".dir", archive.SQLITE: ".sqlite3"}
DEFAULT_POSTGRES_PORT = 5432
BY_IDENTIFIER = "system identifier"
BY_ADDRESS = "host:port"


@dataclass(frozen=True)
class Origin:
    """Which database of which server a backup comes from: a name alone does not tell the
    bird_app_db of one server from another's."""

    server: str  # host:port, or the SQLite file's absolute path
    database: str
    system_identifier: str = ""  # the cluster's pg_control_system() identifier, when the role could read it

    @classmethod
    def of(cls, source: str, database: str, system_identifier: str = "") -> "Origin":
        """The origin of a database given by its (masked) URL."""
        parts = urlsplit(source)
        if parts.scheme == "sqlite":
            return cls(os.path.abspath(unquote(source.removeprefix("sqlite:///"))), database, system_identifier)
        try:
            port = parts.port or DEFAULT_POSTGRES_PORT
        except ValueError:
            port = DEFAULT_POSTGRES_PORT
        host = parts.hostname or "localhost"
        return cls(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", database, system_identifier)

    @classmethod
    def of_target(cls, target, system_identifier: str = "") -> "Origin":
        """The origin of a connection.Target, whose server said system_identifier (or could not)."""
        return cls.of(target.masked, target.label, system_identifier)

    def server_match(self, other: "Origin") -> str:
        """The rule by which both are one server (BY_IDENTIFIER, BY_ADDRESS), or "" when they are not.

        A server is who it is, not how it is spelt: Render's Internal and External URLs (or
        127.0.0.1 and localhost) name one cluster, whose system identifier says so. Where either side
        lacks one (an old manifest, SQLite, a role or server that could not tell), host:port decides."""
        if self.system_identifier and other.system_identifier:
            return BY_IDENTIFIER if self.system_identifier == other.system_identifier else ""
        return BY_ADDRESS if self.server == other.server else ""

    def is_same_database(self, other: "Origin") -> bool:
        return self.database == other.database and bool(self.server_match(other))

    def __str__(self) -> str:
        return f"{self.database} on {self.server}"


# How a manifest's error names the JSON type a field needs.
JSON_TYPES = {
    str: "a string", int: "a whole number", bool: "true or false", list: "a list",
    dict: "an object",
}


@dataclass
class Manifest:
    """What a backup held when it was made; stored beside it as <name>.json, after the archive itself."""

    database: str
    source: str
    engine: str
    format: str
    created_at: str
    size: int
    sha256: str  # of the bytes stored (encrypted ones, when encrypted)
    tables: dict[str, int]
    server_version: str = ""
    pg_dump_version: str = ""
    kind: str = KIND_BACKUP
    system_identifier: str = ""
    compression: str = ""  # of a pg_dump archive's data, from its header: none, gzip, lz4 or zstd
    encrypted: bool = False
    recipients: list[str] = field(default_factory=list)  # age public keys; never a secret key

    @property
    def origin(self) -> Origin:
        return Origin.of(self.source, self.database, self.system_identifier)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> "Manifest":
        try:
            data = json.loads(text)
            manifest = cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})
        except (ValueError, TypeError, AttributeError) as exc:
            raise unreadable_manifest(where, exc) from None
        wrong = manifest.mistyped_field()
        if wrong:
            expected = cls.__dataclass_fields__[wrong].type
            raise unreadable_manifest(where, f'"{wrong}" is not {JSON_TYPES[typing.get_origin(expected) or expected]}')
        return manifest

    def mistyped_field(self) -> str | None:
        """The first field whose JSON value has the wrong type ("tables": null, a list, a count that is text)."""
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, typing.get_origin(item.type) or item.type):
                return item.name
        if not all(isinstance(key, str) and type(count) is int for key, count in self.tables.items()):
            return "tables"
        return None


def unreadable_manifest(where: str, reason) -> DbOpsError:
    return DbOpsError(f"The manifest {where} is not readable ({reason}); move it away to restore without it.")


def manifest_name(archive_name: str) -> str:
    return archive_name + ".json"


def utc_now() -> datetime:
    return datetime.now(UTC)


def backup_name(database: str, when: datetime, archive_format: str, kind: str = KIND_BACKUP) -> str:
    safety = "-pre-restore" if kind == KIND_SAFETY else ""
    return f"{database}-{when.strftime(TIMESTAMP_FORMAT)}{safety}{SUFFIX_BY_FORMAT[archive_format]}"


def unused_name(
    taken: set[str], database: str, archive_format: str, kind: str, suffix: str = ""
) -> tuple[datetime, str]:
    """The time and name of a new backup: now, or a microsecond later than a name (or its manifest's)
    already taken. Call it holding the location's lock, so that no other backup takes the name meanwhile."""
    when = utc_now()
    while (name := backup_name(database, when, archive_format, kind) + suffix) in taken or manifest_name(
        name
    ) in taken:
        when += timedelta(microseconds=1)
    return when, name


def parse_stamp(stamp: str) -> datetime:
    layout = TIMESTAMP_FORMAT if "." in stamp else SECONDS_TIMESTAMP_FORMAT
    return datetime.strptime(stamp, layout).replace(tzinfo=UTC)


@dataclass(frozen=True)
class BackupName:
    """What a backup's name says: its database, time and kind (None for a name no backup has)."""

    database: str
    created_at: datetime
    kind: str

    @classmethod
    def parse(cls, name: str) -> "BackupName | None":
        match = NAME_PATTERN.match(name)
        if not match or name.startswith("."):
            return None
        return cls(match["database"], parse_stamp(match["stamp"]), KIND_SAFETY if match["safety"] else KIND_BACKUP)


@dataclass(frozen=True)
class BackupFile:
    name: str
    where: str  # the path or s3:// URL to show
    database: str
    created_at: datetime
    kind: str
    size: int
    manifest: Manifest | None
    local_path: Path | None = None
    manifest_problem: str = ""  # why the manifest beside it could not be read

    @property
    def origin(self) -> Origin | None:
        """None for a backup without a manifest: where it came from is unknown."""
        return self.manifest.origin if self.manifest else None

    def is_from(self, origin: Origin) -> bool:
        return self.origin is not None and self.origin.is_same_database(origin)

    def checksum_status(self) -> str:
        """Local files are hashed; objects are compared by size (reading them all would mean downloading)."""
        if self.manifest_problem:
            return "unreadable manifest"
        if self.manifest is None:
            return "no manifest"
        if self.local_path is None:
            return "size ok" if self.size == self.manifest.size else "SIZE MISMATCH"
        try:
            return "ok" if archive.sha256_of(self.local_path) == self.manifest.sha256 else "MISMATCH"
        except OSError as exc:
            return f"unreadable ({exc.strerror})"
