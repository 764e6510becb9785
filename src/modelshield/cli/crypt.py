"""``modelshield encrypt`` and ``decrypt``: encryption at rest for data sets and model files.

$ modelshield keygen --algorithm x25519-mlkem768 --out keys/
$ modelshield encrypt model.safetensors --output model.enc --recipient keys/modelshield.pub
$ modelshield decrypt model.enc --output model.safetensors --identity keys/modelshield.key
$ MS_PASS=... modelshield encrypt data.parquet --output data.enc --passphrase-env MS_PASS

Passphrases come only from environment variables, never from the command line. ``decrypt`` exits 1 when the file
does not authenticate (modified, truncated, wrong key or passphrase) and writes nothing; 2 on other errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelshield.cli.options import EXIT_FINDINGS
from modelshield.errors import InvalidParameterError, VerificationError

__all__ = ["register"]


def _exactly_one(key: object, passphrase_env: str | None, key_option: str) -> None:
    if (key is None) == (passphrase_env is None):
        raise InvalidParameterError(
            f"Give exactly one of {key_option} and --passphrase-env.",
            remedy=f"Use {key_option} for a key pair, or --passphrase-env VAR with the passphrase in $VAR.",
        )


def encrypt_command(
    src: Annotated[Path, typer.Argument(help="File to encrypt.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Encrypted file to write.")],
    recipient: Annotated[
        Path | None, typer.Option(help="Public key (.pub) of an x25519-mlkem768 key pair to encrypt for.")
    ] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding a passphrase to encrypt with (scrypt).")
    ] = None,
    chunk_size: Annotated[int, typer.Option(help="Plaintext bytes per authenticated chunk.")] = 1 << 20,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Encrypt a file (AES-256-GCM in chunks) for a recipient key or under a passphrase."""
    from modelshield.supply_chain.encryption import encrypt_file
    from modelshield.supply_chain.keys import load_public_key, passphrase_from_env

    _exactly_one(recipient, passphrase_env, "--recipient")
    public = load_public_key(recipient) if recipient is not None else None
    result = encrypt_file(
        src,
        output,
        recipient=public,
        passphrase=passphrase_from_env(passphrase_env),
        chunk_size=chunk_size,
        overwrite=force,
    )
    to = f"recipient {result.recipient_fingerprint}" if result.recipient_fingerprint else "a passphrase (scrypt)"
    typer.echo(f"encrypted {src} ({result.plaintext_bytes} bytes, {result.chunks} chunks) for {to} -> {output}")


def decrypt_command(
    src: Annotated[Path, typer.Argument(help="Encrypted file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Plaintext file to write (mode 0600).")],
    identity: Annotated[Path | None, typer.Option(help="Private key (.key) of the recipient.")] = None,
    key_passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the private key's passphrase.")
    ] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the passphrase the file was encrypted with.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Decrypt a file; nothing is written unless every chunk authenticates (exit 1 if one does not)."""
    from modelshield.supply_chain.encryption import decrypt_file
    from modelshield.supply_chain.keys import load_private_key, passphrase_from_env

    _exactly_one(identity, passphrase_env, "--identity")
    if key_passphrase_env is not None and identity is None:
        raise InvalidParameterError(
            "--key-passphrase-env applies to --identity only.", remedy="Use --passphrase-env for a passphrase file."
        )
    private = load_private_key(identity, passphrase_from_env(key_passphrase_env)) if identity is not None else None
    try:
        result = decrypt_file(
            src, output, identity=private, passphrase=passphrase_from_env(passphrase_env), overwrite=force
        )
    except VerificationError as exc:
        typer.echo(f"error: {' '.join(exc.message.split())} Fix: {exc.remedy}", err=True)
        raise typer.Exit(EXIT_FINDINGS) from None
    typer.echo(f"decrypted {src} ({result.plaintext_bytes} bytes, {result.chunks} chunks) -> {output}")


def register(app: typer.Typer) -> None:
    app.command("encrypt")(encrypt_command)
    app.command("decrypt")(decrypt_command)
