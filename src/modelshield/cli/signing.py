"""``modelshield keygen``, ``sign`` and ``verify``: key pairs and signatures over model files and directories.

$ MS_PASS=... modelshield keygen --algorithm hybrid --out keys/ --passphrase-env MS_PASS
$ modelshield sign model/ --key keys/modelshield.key --passphrase-env MS_PASS --output model.sig
$ modelshield verify model/ --signature model.sig --public-key keys/modelshield.pub
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelshield.cli._console import passphrase_from_env
from modelshield.cli.options import EXIT_CLEAN, EXIT_FINDINGS, KEY_ALGORITHMS, choice_option
from modelshield.reporting.interface import printable

__all__ = ["register"]


def keygen_command(
    out: Annotated[Path, typer.Option(help="Directory for NAME.key (mode 0600) and NAME.pub.")],
    algorithm: Annotated[
        str,
        choice_option(
            "--algorithm",
            KEY_ALGORITHMS,
            help="Signing: ed25519, ecdsa-p256 or hybrid (P-256 + ML-DSA-65); encryption: x25519 or x25519-mlkem768.",
        ),
    ] = "hybrid",
    name: Annotated[str, typer.Option(help="File name stem of the key pair.")] = "modelshield",
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding a passphrase to encrypt the private key.")
    ] = None,
) -> None:
    """Generate a key pair for signing (ed25519, ecdsa-p256, hybrid) or for encryption (x25519, x25519-mlkem768)."""
    from modelshield.supply_chain.keys import generate_keypair, write_keypair

    passphrase = passphrase_from_env(passphrase_env)
    keys = generate_keypair(algorithm)
    private, public = write_keypair(keys, out, name=name, passphrase=passphrase)
    typer.echo(f"private key: {private}{' (encrypted)' if passphrase else ''}")
    typer.echo(f"public key:  {public}")
    typer.echo(f"fingerprint: {keys.public().fingerprint}")


def sign_command(
    path: Annotated[Path, typer.Argument(help="Model file or directory.")],
    key: Annotated[Path, typer.Option(help="Private key file (from `modelshield keygen`).")],
    output: Annotated[Path | None, typer.Option(help="Signature file (default: PATH.sig beside the model).")] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the private key's passphrase.")
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="Path inside the model to leave unsigned (repeatable).")
    ] = None,
    shard_size: Annotated[
        int | None,
        typer.Option(min=1, help="Hash files in shards of this many bytes (parallel within large files)."),
    ] = None,
) -> None:
    """Sign a model file or directory: a manifest of SHA-256 digests, in the OpenSSF model-signing format."""
    from modelshield.supply_chain.keys import load_private_key
    from modelshield.supply_chain.signing import DEFAULT_IGNORED, sign_model

    private = load_private_key(key, passphrase_from_env(passphrase_env))
    signature = output or path.with_name(path.name + ".sig")
    manifest = sign_model(path, private, signature, ignore=[*DEFAULT_IGNORED, *(ignore or [])], shard_size=shard_size)
    typer.echo(
        printable(f"signed {len(manifest.digests)} resources of {path} ({private.algorithm.value}) -> {signature}")
    )


def verify_command(
    path: Annotated[Path, typer.Argument(help="Model file or directory.")],
    signature: Annotated[Path, typer.Option(help="Signature file.")],
    public_key: Annotated[Path, typer.Option(help="Public key file of the signer.")],
) -> None:
    """Verify a model against its signature: exit 0 only when every signature holds and every file matches.

    Exit 1 when verification fails (the reason, with the files changed, added or removed, on stderr), 2 on unusable
    input (a missing model or key, a file that is not a signature).
    """
    from modelshield.errors import FileFormatError, VerificationError
    from modelshield.supply_chain.keys import load_public_key
    from modelshield.supply_chain.signing import verify_model

    if not path.exists():
        raise FileFormatError(f"{path} does not exist.", remedy="Check the model path.")
    try:
        verified = verify_model(path, signature, load_public_key(public_key))
    except VerificationError as exc:
        typer.echo(f"verification failed: {printable(' '.join(exc.message.split()))}", err=True)
        raise typer.Exit(EXIT_FINDINGS) from None
    typer.echo(printable(verified.summary()))
    raise typer.Exit(EXIT_CLEAN)


def register(app: typer.Typer) -> None:
    app.command("keygen")(keygen_command)
    app.command("sign")(sign_command)
    app.command("verify")(verify_command)
