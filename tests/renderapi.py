"""A small stand-in for Render's REST API on loopback, for db_info's expiry check.

Its routes, bodies and errors are those of Render's own fake server and generated client in the
public render-oss/cli repository, commit 85c8c2c03e50e2890e36f9e5ca2c227d8cacbbdd (2026-08-21):
internal/fakes/renderapi/server.go (GET /postgres/{id}: the instance's PostgresDetail or an empty
404; an injected status answered with no body; 401 with an Error body `{"message": ...}`;
NewPostgres's defaults: plan free, version "18", region oregon, status available) and
pkg/client/types_gen.go (PostgresDetail's JSON names, `expiresAt` only on free instances).
"""

import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import Certificates

API_KEY = "rnd_test_key_0123456789abcdef"


def postgres_id(label: str) -> str:
    """A syntactically valid id (render-oss/cli internal/testids: dpg- and 20 characters), as a primary."""
    return f"dpg-{label.lower()[:20].ljust(20, '0')}-a"


def postgres_detail(instance_id: str, plan: str = "free", expires_in: timedelta | None = None) -> dict:
    created = datetime.now(UTC) - timedelta(days=10)
    detail = {
        "id": instance_id,
        "name": "bird-db",
        "plan": plan,
        "version": "18",
        "region": "oregon",
        "status": "available",
        "databaseName": "bird_app_db",
        "databaseUser": "bird_app_db_user",
        "createdAt": created.isoformat().replace("+00:00", "Z"),
        "updatedAt": created.isoformat().replace("+00:00", "Z"),
        "dashboardUrl": f"https://dashboard.render.com/d/{instance_id}",
        "highAvailabilityEnabled": False,
        "diskAutoscalingEnabled": False,
        "ipAllowList": [],
        "readReplicas": [],
        "role": "primary",
        "suspended": "not_suspended",
        "suspenders": [],
        "connectionPool": "none",
        "owner": {"id": "tea-00000000000000000000", "name": "birds", "type": "team"},
    }
    if expires_in is not None:
        detail["expiresAt"] = (datetime.now(UTC) + expires_in).isoformat().replace("+00:00", "Z")
    return detail


@dataclass
class FakeRenderApi:
    url: str
    instances: dict[str, dict] = field(default_factory=dict)
    # (status, headers) answered, in order, before the instances are looked at (the fake's RespondWith).
    queued: deque = field(default_factory=deque)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization header)

    def add(self, detail: dict) -> str:
        self.instances[detail["id"]] = detail
        return detail["id"]

    def respond_with(self, status: int, **headers: str) -> None:
        self.queued.append((status, headers))


def handler_for(api: FakeRenderApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            api.requests.append((self.path, self.headers.get("Authorization", "")))
            if api.queued:
                status, headers = api.queued.popleft()
                return self.answer(status, None, headers)
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                return self.answer(401, {"message": "unauthorized"})
            prefix = "/v1/postgres/"
            detail = api.instances.get(self.path.removeprefix(prefix)) if self.path.startswith(prefix) else None
            if detail is None:
                return self.answer(404, None)
            return self.answer(200, detail)

        def answer(self, status: int, body: dict | None, headers: dict | None = None):
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name.replace("_", "-"), value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # the test's output is no place for an access log
            pass

    return Handler


@contextmanager
def fake_render_api(certificates: Certificates | None = None) -> Iterator[FakeRenderApi]:
    """The stand-in on loopback; over TLS (https) with certificates' server certificate."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)
    scheme = "http"
    if certificates:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates.server_cert, certificates.server_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.handle_error = lambda request, address: None  # a client that refuses the certificate: its side says why
        scheme = "https"
    api = FakeRenderApi(url=f"{scheme}://127.0.0.1:{server.server_port}/v1")
    server.RequestHandlerClass = handler_for(api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_api() -> Iterator[str]:
    """An address that accepts connections and never answers (a hung proxy, a black-holed route)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        listener.close()
