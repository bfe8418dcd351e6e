"""Which database a command works on: parsed from a URL or a Django alias, printable without its password."""

import ipaddress
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .errors import DbOpsError

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis"}
SQLITE_SCHEMES = {"sqlite"}
DEFAULT_CONNECT_TIMEOUT = 10
# The sslmode values under which libpq refuses a connection without TLS.
TLS_SSLMODES = frozenset({"require", "verify-ca", "verify-full"})
# Shorter passwords are masked only where they stand (in a URL, after password=): replaced wherever
# they occur, they would mangle messages ("/var/run/****ostgresql") and give themselves away.
SCRUB_ANYWHERE_MIN_LENGTH = 8
URL_PASSWORD = re.compile(r"(?P<before>\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s]*(?=@)", re.IGNORECASE)
KEYWORD_PASSWORD = re.compile(r"(?P<before>\b(?:PG)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s]+)", re.IGNORECASE)

# URL query parameters that libpq reads from environment variables; passing them through the
# environment keeps every connection detail that may be secret out of argv.
LIBPQ_ENVIRONMENT = {
    "hostaddr": "PGHOSTADDR",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
    "sslsni": "PGSSLSNI",
    "sslcertmode": "PGSSLCERTMODE",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcrldir": "PGSSLCRLDIR",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "requiressl": "PGREQUIRESSL",
    "require_auth": "PGREQUIREAUTH",
    "requirepeer": "PGREQUIREPEER",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "gssdelegation": "PGGSSDELEGATION",
    "client_encoding": "PGCLIENTENCODING",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
    "min_protocol_version": "PGMINPROTOCOLVERSION",
    "max_protocol_version": "PGMAXPROTOCOLVERSION",
}
# libpq options that no environment variable carries, so that pg_dump and psql would not get them: refused
# rather than applied to some connections only (sslpassword would also be a secret in argv).
LIBPQ_WITHOUT_ENVIRONMENT = frozenset({
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    "fallback_application_name", "replication", "sslpassword", "sslkeylogfile", "scram_client_key",
    "scram_server_key", "oauth_issuer", "oauth_client_id", "oauth_client_secret", "oauth_scope",
})
URL_DOES_NOT_PARSE = (
    "The database URL does not parse: @ / : % # ? in a password must be percent-encoded "
    "(e.g. @ as %40, / as %2F)."
)


@dataclass(frozen=True)
class Target:
    """One database: a PostgreSQL database on a server, or a SQLite file (name is then its path)."""

    engine: str
    name: str
    user: str = ""
    password: str = field(default="", repr=False)
    host: str = ""
    port: int | None = None
    options: dict = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.engine == "sqlite"

    @property
    def path(self) -> Path:
        return Path(self.name)

    @property
    def label(self) -> str:
        """The name backups of this database are filed under."""
        return self.path.stem if self.is_sqlite else self.name

    def with_database(self, name: str) -> "Target":
        return replace(self, name=name)

    def url(self, show_password: bool = False, with_options: bool = True) -> str:
        """postgresql://user:****@host:port/db, the form every message prints, and one a user can paste."""
        if self.is_sqlite:
            return f"sqlite:///{self.name}"
        credentials = ""
        if self.user:
            secret = quote(self.password, safe="") if show_password else "****"
            credentials = f"{quote(self.user, safe='')}:{secret}@" if self.password else f"{quote(self.user, safe='')}@"
        port = f":{self.port}" if self.port else ""
        # An IPv6 address goes in brackets; a socket folder cannot stand in the URL's host, only in ?host=.
        host = f"[{self.host}]" if ":" in self.host else "" if self.host.startswith("/") else self.host
        parameters = {"host": self.host} if self.host.startswith("/") else {}
        parameters.update(self.options if with_options else {})
        query = "&".join(f"{key}={quote(str(value), safe='/')}" for key, value in parameters.items())
        return f"postgresql://{credentials}{host}{port}/{quote(self.name, safe='')}" + (f"?{query}" if query else "")

    @property
    def masked(self) -> str:
        """The URL without password or options: enough to say which database is meant."""
        return self.url(show_password=False, with_options=False)

    def scrub(self, text: str) -> str:
        """Remove the password from text that a tool or driver produced, just in case it echoes it:
        wherever a password stands (URLs, password=), and a long password anywhere as a whole word."""
        text = URL_PASSWORD.sub(r"\g<before>****", text)
        text = KEYWORD_PASSWORD.sub(r"\g<before>****", text)
        if len(self.password) >= SCRUB_ANYWHERE_MIN_LENGTH:
            for shown in {self.password, quote(self.password, safe="")}:
                # Not inside a longer word: "****_dbx" would tell that the password is the start of "simple_dbx".
                text = re.sub(rf"(?<!\w){re.escape(shown)}(?!\w)", "****", text)
        return text


def target_from_url(url: str) -> Target:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": the text is urllib's own, without the URL
        raise DbOpsError(
            f"The database URL is not valid ({exc}): expected postgresql://user:password@host:port/db."
        ) from None
    scheme = parts.scheme.lower()
    if "\0" in unquote(url):
        raise DbOpsError("The database URL holds a NUL character (%00), which no database name or option may hold.")
    if scheme in SQLITE_SCHEMES:
        return Target(engine="sqlite", name=unquote(parts.path[1:] if parts.path.startswith("/") else parts.path))
    if scheme not in POSTGRES_SCHEMES:
        shown = f"{scheme}://" if scheme else repr(url.split("@")[-1])
        raise DbOpsError(f"Unsupported database URL {shown}: use postgres://, postgresql:// or sqlite:///.")
    if has_unencoded_password(url):
        raise DbOpsError(URL_DOES_NOT_PARSE)
    # libpq also takes the connection's parts as query parameters (?host=/path/to/socket), and
    # those win; each goes where the URL's own part would, never twice to the driver.
    query = dict(parse_qsl(parts.query))
    check_options(query, "the database URL")
    try:
        port = int(query.pop("port")) if "port" in query else parts.port
    except ValueError:
        raise DbOpsError("The database URL has an invalid port number.") from None
    name = query.pop("dbname", None) or unquote(parts.path.lstrip("/"))
    if not name:
        raise DbOpsError("The database URL names no database (postgresql://user:password@host:port/DATABASE).")
    return Target(
        engine="postgresql",
        name=name,
        user=query.pop("user", None) or unquote(parts.username or ""),
        password=query.pop("password", None) or unquote(parts.password or ""),
        host=query.pop("host", None) or unquote(parts.hostname or ""),  # a Unix socket folder comes percent-encoded
        port=port,
        options=query,
    )


def has_unencoded_password(url: str) -> bool:
    """An @ after the host: the password held a / # or ? that ended the URL's user:password@host part early."""
    after_scheme = url.partition("://")[2]
    return "@" in after_scheme[len(urlsplit(url).netloc) :]


CONNECTION_PARTS = frozenset({"host", "port", "dbname", "user", "password"})


def check_connect_timeout(options: dict, where: str) -> None:
    if not str(options.get("connect_timeout", "0")).isdigit():
        raise DbOpsError(f"connect_timeout in {where} must be a whole number of seconds (0: wait forever).")


def check_options(options: dict, where: str) -> None:
    """Refuse what would fail later with a traceback, or reach the driver but not pg_dump and psql."""
    check_connect_timeout(options, where)
    unpassed = sorted(key for key in options if key not in LIBPQ_ENVIRONMENT and key not in CONNECTION_PARTS)
    if unpassed:
        raise DbOpsError(
            f"{where[0].upper()}{where[1:]} has the option(s) {', '.join(unpassed)}, which pg_dump and psql cannot be "
            "given (libpq reads them from no PG* variable): drop them."
        )


def target_from_settings(settings_dict: dict) -> Target:
    """A Target from one entry of Django's DATABASES."""
    engine = settings_dict.get("ENGINE", "")
    if engine == "django.db.backends.sqlite3":
        return Target(engine="sqlite", name=str(settings_dict["NAME"]))
    if engine not in {"django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"}:
        raise DbOpsError(f"Database engine {engine!r} is not supported: only PostgreSQL and SQLite are.")
    options = settings_dict.get("OPTIONS") or {}
    # Other OPTIONS are Django's own (pool, isolation_level, ...), not the connection's.
    check_options({key: value for key, value in options.items() if key in LIBPQ_WITHOUT_ENVIRONMENT}, "DATABASES")
    port = settings_dict.get("PORT")
    return Target(
        engine="postgresql",
        name=settings_dict.get("NAME") or "",
        user=settings_dict.get("USER") or "",
        password=settings_dict.get("PASSWORD") or "",
        host=settings_dict.get("HOST") or "",
        port=int(port) if port else None,
        options={
            key: str(value)
            for key, value in options.items()
            if key in LIBPQ_ENVIRONMENT and not _implied(key, value)
        },
    )


def _implied(key: str, value) -> bool:
    """An option the settings add to every DATABASE_URL (connect_timeout=10), which every tool here
    applies anyway: left out, so URLs print as the user wrote them."""
    return key == "connect_timeout" and str(value) == str(DEFAULT_CONNECT_TIMEOUT)


def target_from_alias(alias: str) -> Target:
    from django.db import connections

    if alias not in connections.settings:
        raise DbOpsError(f"No database alias {alias!r} in settings.DATABASES.")
    return target_from_settings(connections.settings[alias])


def is_local(target: Target) -> bool:
    """Whether the connection stays on this machine: a Unix socket, localhost or a loopback address."""
    host = target.host
    if not host or host.startswith("/") or host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may be anywhere
        return False


def connection_options(target: Target) -> dict[str, str]:
    """The URL's libpq options, with TLS required towards any host off this machine unless the URL
    chooses an sslmode itself: a hosted database refuses plain connections, and one that accepted
    them would carry the whole database over the internet unencrypted.

    A host name of one label (Render's internal dpg-...-a, a Docker or Kubernetes service) resolves
    only inside a private network, whose servers need not offer TLS: there TLS is used when offered."""
    options = dict(target.options)
    if not is_local(target):
        options.setdefault("sslmode", "prefer" if is_private_network_name(target.host) else "require")
    return options


def is_private_network_name(host: str) -> bool:
    return "." not in host and ":" not in host


def needs_tls_tools(target: Target) -> bool:
    """Whether only client tools built with TLS will do: the sslmode demands TLS, or the host is
    elsewhere and the URL does not turn TLS off."""
    sslmode = connection_options(target).get("sslmode", "prefer")
    return sslmode in TLS_SSLMODES or (not is_local(target) and sslmode != "disable")


def libpq_env(target: Target) -> dict[str, str]:
    """Environment for a PostgreSQL client tool: the password and TLS options, never in argv."""
    env = {"PGCONNECT_TIMEOUT": str(DEFAULT_CONNECT_TIMEOUT)}
    for key, value in connection_options(target).items():
        if key in LIBPQ_ENVIRONMENT:
            env[LIBPQ_ENVIRONMENT[key]] = str(value)
    if target.password:
        env["PGPASSWORD"] = target.password
    return env


def libpq_args(target: Target) -> list[str]:
    """Connection arguments every client tool takes; --no-password so none waits at a prompt."""
    args = []
    if target.host:
        args += ["--host", target.host]
    if target.port:
        args += ["--port", str(target.port)]
    if target.user:
        args += ["--username", target.user]
    return [*args, "--no-password"]
