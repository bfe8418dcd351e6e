class DbOpsError(Exception):
    """A database operation failed; the message is one line, safe to show (no password)."""


class Interrupted(KeyboardInterrupt):
    """The user pressed Ctrl-C; the message says, in one line, what state things were left in.

    A KeyboardInterrupt, so that code catching DbOpsError or Exception lets it pass to the command."""
