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
