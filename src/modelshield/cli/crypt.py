"""``modelshield encrypt`` and ``decrypt``: encryption at rest for data sets and model files, in the age format.

$ modelshield keygen --algorithm x25519-mlkem768 --out keys/
$ modelshield encrypt model.safetensors --output model.age --recipient keys/modelshield.pub --recipient age1pq1...
$ modelshield decrypt model.age --output model.safetensors --identity keys/modelshield.key
$ MS_PASS=... modelshield encrypt data.parquet --output data.age --passphrase-env MS_PASS

Files are age v1: `age -d` and `rage -d` read them, and these commands read theirs. ``--recipient`` takes an age
recipient string (``age1...``, ``age1pq1...``) or a key file (an age recipients file, or a modelshield .pub);
``--identity`` an age identity file (plain or passphrase-encrypted) or a modelshield .key. Passphrases come only
from environment variables, never from the command line. ``decrypt`` exits 1 when the file does not authenticate
(modified, truncated, wrong key or passphrase) and writes nothing; 2 on usage and input errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli._console import passphrase_from_env
from modelshield.cli.options import EXIT_FINDINGS
from modelshield.errors import InvalidParameterError, VerificationError

if TYPE_CHECKING:
    from modelshield.supply_chain.keys import PrivateKeySet, PublicKeySet

__all__ = ["register"]


def _recipients(values: list[str]) -> list[PublicKeySet]:
    """Each ``--recipient``: an age recipient string when it starts with ``age1`` (unless a file has that name),
    else a key file."""
    from modelshield.supply_chain.keys import load_recipients, parse_age_recipient

    found: list[PublicKeySet] = []
    for value in values:
        is_string = value.startswith("age1") and not _is_file(value)
        found += [parse_age_recipient(value)] if is_string else load_recipients(Path(value))
    return found


def _is_file(value: str) -> bool:
    try:
        return Path(value).is_file()
    except OSError:  # a post-quantum recipient is longer than a file name may be
        return False


def _identities(paths: list[Path], key_passphrase: bytes | None) -> list[PrivateKeySet]:
    from modelshield.supply_chain.keys import load_identities

    return [identity for path in paths for identity in load_identities(path, key_passphrase)]


def _short(recipient: str) -> str:
    return recipient if len(recipient) <= 24 else f"{recipient[:16]}…{recipient[-6:]}"


def encrypt_command(
    src: Annotated[Path, typer.Argument(help="File to encrypt.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="age file to write.")],
    recipient: Annotated[
        list[str] | None,
        typer.Option(
            "--recipient",
            "-r",
            help="age recipient (age1pq1... or age1...) or a file of them (.pub); repeatable. One kind per file.",
        ),
    ] = None,
    passphrase_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding a passphrase to encrypt with (scrypt), instead of keys."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --output file if it exists.")] = False,
) -> None:
    """Encrypt a file to the age format, for one or more recipients or under a passphrase."""
    from modelshield.supply_chain.encryption import encrypt_file

    if recipient and passphrase_env is not None:
        raise InvalidParameterError(
            "Give --recipient or --passphrase-env, not both: age does not allow a passphrase beside recipients.",
            remedy="Encrypt for keys (--recipient, repeatable), or with a passphrase alone (--passphrase-env VAR).",
        )
    if not recipient and passphrase_env is None:
        raise InvalidParameterError(
            "Give --recipient (repeatable) or --passphrase-env.",
            remedy="Use --recipient KEY.pub or an age1... string, or --passphrase-env VAR with the passphrase in $VAR.",
        )
    passphrase = passphrase_from_env(passphrase_env)
    result = encrypt_file(src, output, recipients=_recipients(recipient or []), passphrase=passphrase, overwrite=force)
    to = (
        "a passphrase (scrypt)"
        if passphrase is not None
        else f"{len(result.recipients)} {result.wrapping.value} recipient(s) "
        + ", ".join(_short(r) for r in result.recipients)
    )
    typer.echo(f"encrypted {src} ({result.plaintext_bytes} bytes) for {to} -> {output}")


def decrypt_command(
    src: Annotated[Path, typer.Argument(help="age file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Plaintext file to write (mode 0600).")],
    identity: Annotated[
        list[Path] | None,
        typer.Option("--identity", "-i", help="age identity file or modelshield .key; repeatable."),
    ] = None,
    key_passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the passphrase of the identity file(s).")
    ] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the passphrase the file was encrypted with.")
    ] = None,
    max_work_factor: Annotated[
        int,
        typer.Option(
            min=1, max=30, help="Highest scrypt work factor (log2 N) to accept for a passphrase file: 20 is 1 GiB."
        ),
    ] = 20,
    force: Annotated[bool, typer.Option("--force", help="Replace the --output file if it exists.")] = False,
) -> None:
    """Decrypt an age file; nothing is written unless every chunk authenticates (exit 1 if one does not)."""
    from modelshield.supply_chain.encryption import decrypt_file

    if bool(identity) == (passphrase_env is not None):
        raise InvalidParameterError(
            "Give exactly one of --identity (repeatable) and --passphrase-env.",
            remedy="Use --identity for a key, or --passphrase-env VAR with the passphrase in $VAR.",
        )
    if key_passphrase_env is not None and not identity:
        raise InvalidParameterError(
            "--key-passphrase-env applies to --identity only.", remedy="Use --passphrase-env for a passphrase file."
        )
    identities = _identities(identity or [], passphrase_from_env(key_passphrase_env))
    try:
        result = decrypt_file(
            src,
            output,
            identities=identities,
            passphrase=passphrase_from_env(passphrase_env),
            overwrite=force,
            max_scrypt_work_factor=max_work_factor,
        )
    except VerificationError as exc:
        typer.echo(f"error: {' '.join(exc.message.split())} Fix: {' '.join(exc.remedy.split())}", err=True)
        raise typer.Exit(EXIT_FINDINGS) from None
    typer.echo(f"decrypted {src} ({result.plaintext_bytes} bytes, {result.wrapping.value}) -> {output}")


def register(app: typer.Typer) -> None:
    app.command("encrypt")(encrypt_command)
    app.command("decrypt")(decrypt_command)
