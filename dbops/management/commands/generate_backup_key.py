from pathlib import Path

from django.core.management.base import CommandError

from dbops.encryption import generate_key
from dbops.management.base import InterruptibleCommand


class Command(InterruptibleCommand):
    help = (
        "Make a new age key pair for encrypted backups: the identity (secret; keep it off the server) and its "
        "recipient (public; BACKUP_AGE_RECIPIENTS on the server). The identity file works with `age -d -i`."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            "-o",
            type=Path,
            help="Write the identity to this new file (0600) instead of printing it; the recipient is printed.",
        )

    def handle(self, *args, **options):
        key, output = generate_key(), options["output"]
        if output is None:
            # Like age-keygen: the identity file on stdout (so `> key.txt` works), the recipient on stderr.
            self.stdout.write(key.identity_file(), ending="")
            self.stderr.write(f"Recipient (public key) for BACKUP_AGE_RECIPIENTS: {key.recipient}")
            return
        try:
            with output.open("x") as stream:
                output.chmod(0o600)
                stream.write(key.identity_file())
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}; nothing was written.") from exc
        self.stdout.write(f"Wrote the identity to {output}: set BACKUP_AGE_IDENTITY={output} to restore.")
        self.stdout.write(f"Recipient (public key) for BACKUP_AGE_RECIPIENTS: {key.recipient}")
