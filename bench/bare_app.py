"""The limit of our stack: a WSGI app with no framework, psycopg2 and one connection per process,
answering the benchmark's URLs from the same table with the same bytes as the site.

    gunicorn bench.bare_app:application     (DATABASE_URL names the database)

It knows only what the benchmark asks: /birds/<id>, and /birds with limit, offset and search.
"""
import functools
import json
import os
import re
from urllib.parse import parse_qs, urlencode

import psycopg2

MAX_LIST = 1000
DETAIL = re.compile(r"^/birds/(\d+)/?$")
COLUMNS = "SELECT id, name, species FROM birds"


@functools.cache
def connection():
    # One connection per worker process, opened on its first request (gunicorn forks after import).
    opened = psycopg2.connect(os.environ["DATABASE_URL"])
    opened.autocommit = True
    return opened


def rows_to_json(rows):
    return [{"id": id_, "name": name, "species": species} for id_, name, species in rows]


def dumps(data):
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def detail(cursor, bird_id):
    cursor.execute(f"{COLUMNS} WHERE id = %s", (bird_id,))
    row = cursor.fetchone()
    if row is None:
        return "404 Not Found", {"detail": "No Bird matches the given query."}, []
    return "200 OK", rows_to_json([row])[0], []


def listing(cursor, query, base):
    words = query.get("search", [""])[0].split()
    where = " AND ".join(["(name ILIKE %s OR species ILIKE %s)"] * len(words))
    params = [pattern for word in words for pattern in (f"%{word}%",) * 2]
    # Only the placeholders' count varies; every value goes as a parameter.
    where = f" WHERE {where}" if where else ""
    cursor.execute(f"SELECT count(*) FROM birds{where}", params)  # noqa: S608
    count = cursor.fetchone()[0]
    limit = int(query["limit"][0]) if "limit" in query else None
    offset = int(query.get("offset", ["0"])[0])
    size = min(limit or MAX_LIST, MAX_LIST)
    cursor.execute(f"{COLUMNS}{where} ORDER BY id LIMIT %s OFFSET %s", [*params, size, offset])
    birds = rows_to_json(cursor.fetchall())
    pairs = {key: values[0] for key, values in query.items()}
    if limit is not None:
        after = {**pairs, "offset": offset + size} if offset + size < count else None
        before = None
        if offset > 0:
            before = {key: value for key, value in pairs.items() if key != "offset"}
            if offset - size > 0:
                before["offset"] = offset - size
        page = {"count": count, "next": link(base, after), "previous": link(base, before), "results": birds}
        return "200 OK", page, []
    headers = [("X-Total-Count", str(count))]
    if offset + size < count:
        headers.append(("Link", f'<{link(base, {**pairs, "offset": offset + size})}>; rel="next"'))
    return "200 OK", birds, headers


def link(base, pairs):
    return None if pairs is None else f"{base}?{urlencode(sorted(pairs.items()))}"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    with connection().cursor() as cursor:
        if match := DETAIL.match(path):
            status, data, headers = detail(cursor, int(match[1]))
        elif path in ("/birds", "/birds/"):
            scheme = environ.get("HTTP_X_FORWARDED_PROTO", environ["wsgi.url_scheme"])
            base = f"{scheme}://{environ['HTTP_HOST']}{path}"
            status, data, headers = listing(cursor, parse_qs(environ.get("QUERY_STRING", "")), base)
        else:
            status, data, headers = "404 Not Found", {"detail": "Not found."}, []
    body = dumps(data)
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers])
    return [body]
