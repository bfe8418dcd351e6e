class DbOpsError(Exception):
    """A database operation failed; the message is one line, safe to show (no password)."""
