"""splitcopy: pg_restore's data script dealt out to several sessions, each getting valid SQL and the
rows between them exactly once. The whole route, on a real server, is in test_restore_swap.py."""

import pytest

from dbops.splitcopy import END_OF_COPY, CopySplitter, TruncatedScript

HEADER = b"SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\\restrict abc\n"
FOOTER = b"SELECT pg_catalog.setval('public.t_id_seq', 3, true);\n\\unrestrict abc\n"


def copy_block(table: str, rows: list[bytes]) -> bytes:
    return f"COPY public.{table} (id, body) FROM stdin;\n".encode() + b"".join(rows) + b"\\.\n"


def split(script: bytes, sessions: int, piece: int, chunk_size: int = 64) -> list[bytes]:
    received = [bytearray() for _ in range(sessions)]
    splitter = CopySplitter([part.extend for part in received], chunk_size=chunk_size)
    for start in range(0, len(script), piece):
        splitter.feed(script[start : start + piece])
    splitter.close()
    return [bytes(part) for part in received]


def blocks_of(session: bytes) -> dict[bytes, list[bytes]]:
    """Each COPY line's rows, as the session received them."""
    blocks, current = {}, None
    for line in session.splitlines(keepends=True):
        if current is None and line.startswith(b"COPY "):
            current = blocks.setdefault(line, [])
        elif current is not None and line == b"\\.\n":
            current = None
        elif current is not None:
            current.append(line)
    assert current is None, "a session was left inside a COPY block"
    return blocks


# Rows as COPY's text format writes them: escaped newlines, backslashes, tabs; a value starting with a
# dot after an escaped backslash; an empty value; and one row longer than a chunk.
ROWS = [f"{n}\tbird {n}\\nsecond line \\\\ tab\\t.\n".encode() for n in range(1, 200)]
ROWS += [b"200\t\\\\.\n", b"201\t\n", b"202\t" + b"x" * 500 + b"\n"]
# Rows without a backslash: in most pieces the end's own backslash is the first one.
PLAIN_ROWS = [f"{n}\tbird {n}\n".encode() for n in range(300, 500)]


@pytest.mark.parametrize("piece", [1, 7, 64, 100_000])
@pytest.mark.parametrize("sessions", [1, 2, 3])
def test_every_row_reaches_exactly_one_session_and_every_session_gets_whole_blocks(sessions, piece):
    tables = [(b"t", ROWS), (b"empty", []), (b"plain", PLAIN_ROWS), (b"u", ROWS[:3])]
    script = HEADER + b"".join(copy_block(table.decode(), rows) for table, rows in tables) + FOOTER
    received = split(script, sessions, piece)
    per_session = [blocks_of(session) for session in received]
    for table, rows in tables:
        line = f"COPY public.{table.decode()} (id, body) FROM stdin;\n".encode()
        assert all(line in blocks for blocks in per_session)  # every session opens and ends every block
        assert sorted(row for blocks in per_session for row in blocks[line]) == sorted(rows)
    if sessions > 1:
        assert all(blocks[b"COPY public.t (id, body) FROM stdin;\n"] for blocks in per_session)  # all share the work
    for session in received:  # session set-up everywhere, in order, before the rows
        assert session.startswith(HEADER)
    assert received[0].endswith(FOOTER)  # the statements after the rows: the first session's alone
    assert all(session.endswith(END_OF_COPY) for session in received[1:])
    assert [session.count(b"setval") for session in received] == [1] + [0] * (sessions - 1)


def test_rows_in_one_session_keep_their_order():
    (received,) = split(HEADER + copy_block("t", ROWS) + FOOTER, 1, 10)
    assert received == HEADER + copy_block("t", ROWS) + FOOTER


def test_a_script_cut_short_inside_the_rows_is_refused():
    script = HEADER + copy_block("t", ROWS)[:-200]
    with pytest.raises(TruncatedScript, match="ended inside a table's rows"):
        split(script, 2, 4096)


def test_lines_the_server_cannot_run_are_left_out():
    received = []
    splitter = CopySplitter([received.append], keep_line=lambda line: not line.startswith(b"SET transaction_timeout"))
    splitter.feed(b"SET transaction_timeout = 0;\nSET lock_timeout = 0;\n" + copy_block("t", ROWS[:2]))
    splitter.close()
    assert b"".join(received) == b"SET lock_timeout = 0;\n" + copy_block("t", ROWS[:2])


@pytest.mark.parametrize("piece", [1, 64, 100_000])
def test_from_a_statement_that_may_span_lines_on_the_rest_goes_whole_to_the_first_session(piece):
    # A dump made with --inserts: a string's lines may read like a setting, a psql command or a COPY.
    inserts = (
        b"INSERT INTO public.notes VALUES (1, 'intro\n\\section{Birds}\nSET x = 1;\n"
        b"COPY public.notes (id) FROM stdin;\n7\n\\.\nend');\n"
        b"INSERT INTO public.notes VALUES (2, 'plain');\n"
    )
    rest = b"-- Data for Name: t\n\n" + inserts + copy_block("t", ROWS[:5]) + FOOTER
    script = HEADER + copy_block("first", PLAIN_ROWS) + rest
    received = split(script, 2, piece)
    assert received[0].endswith(rest)  # whole and in order, as it came
    assert received[1].startswith(HEADER) and received[1].endswith(END_OF_COPY)
    first = b"COPY public.first (id, body) FROM stdin;\n"
    assert list(blocks_of(received[1])) == [first]  # nothing of what came after the rows
    assert sorted(blocks_of(received[0])[first] + blocks_of(received[1])[first]) == sorted(PLAIN_ROWS)
