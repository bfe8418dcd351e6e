"""Database operations for Django projects on hosted PostgreSQL (and SQLite): the logic behind
the backup_db, restore_db, reset_db, list_backups commands. Commands only parse, confirm and print."""
