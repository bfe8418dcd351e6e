"""Sample app databases and exact comparisons of their contents."""

from io import StringIO

from django.core.management import call_command

APP_SCHEMA = """
CREATE TABLE birds (id serial PRIMARY KEY, name text NOT NULL, species text);
INSERT INTO birds (name, species) VALUES
  ('Black-Capped Chickadee', 'Poecile Atricapillus'), ('Grackle', 'Quiscalus Quiscula'),
  ('Common Starling', 'Sturnus Vulgaris'), ('Mourning Dove', 'Zenaida Macroura'),
  ('Ωmega "quoted", with\ttab', NULL);
CREATE TABLE sightings (
  id bigserial PRIMARY KEY, bird_id int NOT NULL REFERENCES birds(id), seen_at timestamptz,
  notes jsonb, photo bytea, weight numeric(8, 2)
);
INSERT INTO sightings (bird_id, seen_at, notes, photo, weight)
SELECT 1 + g % 5, '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
       jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 3)), decode(md5(g::text), 'hex'), g / 7.0
FROM generate_series(1, 500) AS g;
CREATE SCHEMA archive;
CREATE TABLE archive.old_birds (id int, name text);
INSERT INTO archive.old_birds VALUES (1, 'Dodo'), (2, NULL);
"""


# Objects made after the backup, of every kind a restore must remove (a safety backup keeps them).
EXTRA_OBJECTS = """
CREATE TABLE sightings_extra AS SELECT 1 AS x;
CREATE VIEW recent AS SELECT * FROM sightings_extra;
CREATE MATERIALIZED VIEW counted AS SELECT count(*) FROM sightings_extra;
CREATE SEQUENCE tickets;
CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql AS 'SELECT 2 * $1';
CREATE AGGREGATE total(int) (sfunc = int4pl, stype = int);
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TYPE mood AS ENUM ('calm', 'loud');
CREATE TYPE pair AS (a int, b int);
CREATE TYPE span AS RANGE (subtype = float8);
CREATE OPERATOR === (leftarg = int, rightarg = int, function = int4eq);
CREATE TEXT SEARCH CONFIGURATION birdsearch (copy = simple);
CREATE SCHEMA scratch; CREATE TABLE scratch.notes (body text, rating positive);
"""
APP_OBJECTS = [
    ("archive", "schema"),
    ("archive.old_birds", "table"),
    ("public.birds", "table"),
    ("public.birds_id_seq", "sequence"),
    ("public.sightings", "table"),
    ("public.sightings_id_seq", "sequence"),
]


def user_objects(server, database):
    """Schemas, relations, functions and types outside the system schemas (and what extensions bring)."""
    return server.execute(
        r"""
        SELECT o.identity, o.type FROM (
          SELECT 'pg_namespace'::regclass, oid FROM pg_namespace
          UNION ALL SELECT 'pg_class'::regclass, oid FROM pg_class WHERE relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          UNION ALL SELECT 'pg_proc'::regclass, oid FROM pg_proc
          UNION ALL SELECT 'pg_type'::regclass, oid FROM pg_type WHERE typtype IN ('d', 'e', 'r', 'c') AND typrelid = 0
          UNION ALL SELECT 'pg_operator'::regclass, oid FROM pg_operator
          UNION ALL SELECT 'pg_ts_config'::regclass, oid FROM pg_ts_config
        ) AS c(classid, objid), pg_identify_object(c.classid, c.objid, 0) AS o
        WHERE (o.schema = 'public' OR coalesce(o.schema, o.identity) NOT LIKE 'pg\_%'
               AND coalesce(o.schema, o.identity) NOT IN ('information_schema', 'public'))
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = c.classid AND d.objid = c.objid
                                                    AND d.deptype IN ('e', 'i'))
        ORDER BY 1
        """,
        database=database,
    )


def create_app_data(server, database):
    server.execute(APP_SCHEMA, database=database)


def snapshot(server, database):
    """Every row of every user table, as text, in a stable order."""
    tables = server.execute(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        database=database,
    )
    return {
        table: sorted(row[0] for row in server.execute(f"SELECT t::text FROM {table} AS t", database=database))
        for (table,) in tables
    }


def command(name, *args, **options):
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err, **options)
    return out.getvalue() + err.getvalue()
