"""age encryption of backups (https://age-encryption.org), through pyrage (the Rust age library).

Backing up needs only public keys (BACKUP_AGE_RECIPIENTS), so a server that makes backups cannot read
them; restoring needs the identity file (BACKUP_AGE_IDENTITY), which stays with the people who restore.
Files are standard age files: `age -d -i key.txt FILE` gives back the plain archive.
"""

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .errors import DbOpsError
from .streams import copy_stream

AGE_MAGIC = b"age-encryption.org/v1\n"
AGE_ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
# A key's text (58 bech32 characters after the prefix) where a path was expected; a file merely named
# age-secret-key-1.txt is not one.
SECRET_KEY_TEXT = re.compile(r"AGE-SECRET-KEY-1[02-9ac-hj-np-z]{20,}", re.IGNORECASE)
ENCRYPTED_SUFFIX = ".age"


@dataclass(frozen=True)
class Recipients:
    """The public keys every new backup is encrypted to; empty means backups are not encrypted."""

    keys: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keys)

    def parsed(self) -> list:
        from pyrage import RecipientError, x25519

        try:
            return [x25519.Recipient.from_str(key) for key in self.keys]
        except RecipientError as exc:
            raise DbOpsError(
                f"BACKUP_AGE_RECIPIENTS holds a key that is not an age public key ({exc}): give age1... keys, "
                "separated by commas or newlines, as generate_backup_key prints them."
            ) from None


def recipients_from_env(environ=os.environ) -> Recipients:
    """BACKUP_AGE_RECIPIENTS: keys separated by commas or newlines (age's -R recipients-file format, with
    # comments). Unset or blank means no encryption; set to separators or comments alone, it is an error,
    never a silent fallback to plaintext."""
    text = environ.get("BACKUP_AGE_RECIPIENTS", "")
    if not text.strip():
        return Recipients()
    lines = (line.strip() for line in text.splitlines())
    keys = tuple(key.strip() for line in lines if not line.startswith("#") for key in line.split(",") if key.strip())
    if not keys:
        raise DbOpsError(
            "BACKUP_AGE_RECIPIENTS is set but holds no key (only separators or # comments): give age1... public "
            "keys, separated by commas or newlines, or unset it to store backups unencrypted."
        )
    return Recipients(keys)


def identity_path_from_env(environ=os.environ) -> Path | None:
    text = environ.get("BACKUP_AGE_IDENTITY", "").strip()
    return Path(text).expanduser() if text else None


def load_identities(path: Path | None, what: str) -> list:
    """The identities in an age identity file (age-keygen's format), for decrypting `what`."""
    from pyrage import IdentityError, x25519

    if path is None:
        raise DbOpsError(
            f"{what} is encrypted with age: set BACKUP_AGE_IDENTITY to the path of the identity file "
            "(the AGE-SECRET-KEY-1... that generate_backup_key printed). Nothing was changed."
        )
    lines = identity_file_lines(path)
    keys = [line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-")]
    try:
        identities = [x25519.Identity.from_str(key) for key in keys]
    except IdentityError:
        identities = []
    if not identities:
        raise DbOpsError(f"{path} (BACKUP_AGE_IDENTITY) holds no valid AGE-SECRET-KEY-1... line.")
    return identities


def identity_file_lines(path: Path) -> list[str]:
    """The lines of the identity file; never a message that echoes a key put where its path belongs."""
    if SECRET_KEY_TEXT.search(str(path)):
        raise DbOpsError(
            "BACKUP_AGE_IDENTITY must be the path of the identity file, and it looks like a key itself "
            "(AGE-SECRET-KEY-1...): save the key in a file only you can read, and set BACKUP_AGE_IDENTITY to its path."
        )
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise DbOpsError(f"Cannot read the age identity file {path} (BACKUP_AGE_IDENTITY): {exc.strerror}.") from None
    if content.startswith((AGE_MAGIC, AGE_ARMOR)):
        raise DbOpsError(
            f"The age identity file {path} (BACKUP_AGE_IDENTITY) is itself encrypted (with a passphrase?): "
            f"decrypt it first, e.g. age -d -o key.txt {path}, and point BACKUP_AGE_IDENTITY at key.txt."
        )
    try:
        return content.decode().splitlines()
    except UnicodeDecodeError:
        raise DbOpsError(
            f"The age identity file {path} (BACKUP_AGE_IDENTITY) is not a text file: it must hold "
            "AGE-SECRET-KEY-1... lines, as generate_backup_key and age-keygen write them."
        ) from None


def is_encrypted(head: bytes) -> bool:
    return head.startswith(AGE_MAGIC)


def encrypt(source: IO[bytes], sink: IO[bytes], recipients: Recipients) -> None:
    """Copy source to sink, encrypted to recipients when there are any; streamed in 64 KiB chunks."""
    if not recipients:
        copy_stream(source, sink)
        return
    import pyrage

    try:
        pyrage.encrypt_io(source, sink, recipients.parsed())
    except pyrage.EncryptError as exc:
        raise DbOpsError(f"Encrypting the backup failed: {exc}.") from None


def decrypt(source: IO[bytes], sink: IO[bytes], identities: list, what: str) -> None:
    """Decrypt source into sink; every chunk is authenticated before it is written, so a changed
    or truncated file fails here."""
    import pyrage

    try:
        pyrage.decrypt_io(source, sink, identities)
    except pyrage.DecryptError as exc:
        reason = "none of the keys in BACKUP_AGE_IDENTITY can open it" if "No matching keys" in str(exc) else exc
        raise DbOpsError(f"Cannot decrypt {what}: {reason}. Nothing was changed.") from None
    except OSError as exc:
        raise DbOpsError(
            f"Cannot decrypt {what}: the file is damaged or was changed ({exc}). Nothing was changed."
        ) from None


@dataclass(frozen=True)
class NewKey:
    identity: str
    recipient: str

    def identity_file(self) -> str:
        """age-keygen's format, which `age -d -i FILE` reads."""
        created = datetime.now(UTC).isoformat(timespec="seconds")
        return f"# created: {created}\n# public key: {self.recipient}\n{self.identity}\n"


def generate_key() -> NewKey:
    from pyrage import x25519

    identity = x25519.Identity.generate()
    return NewKey(str(identity), str(identity.to_public()))
