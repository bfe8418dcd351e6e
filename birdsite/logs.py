import logging


class OneLineWarning(logging.Filter):
    """Log a record as one WARNING line: for errors that anyone on the internet can cause at will, which
    are worth a line each but neither a traceback nor an alert."""

    def filter(self, record):
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = record.stack_info = None
        return True
