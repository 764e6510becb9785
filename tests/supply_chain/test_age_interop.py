"""Interoperability with other age implementations, used as oracles: the `age` tool (Go reference, Debian's
package), rage (through pyrage, its Python binding) and typage (the TypeScript implementation, for post-quantum
recipients that Debian's age 1.1 lacks). A file we write must decrypt with theirs, and theirs with ours.

Each group is skipped, with the reason, only when its tool is absent: `apt-get install -y age`,
`pip install pyrage`, `npm install -g age-encryption`.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from modelshield.supply_chain import _age
from modelshield.supply_chain.encryption import decrypt_file, encrypt_file, inspect_encrypted
from modelshield.supply_chain.keys import (
    KeyAlgorithm,
    PrivateKeySet,
    generate_keypair,
    load_identities,
    load_recipients,
    write_keypair,
)

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
needs_age = pytest.mark.skipif(
    AGE is None or AGE_KEYGEN is None, reason="the age tool is not installed (apt-get install -y age)"
)
PASSWORD = "correct horse battery staple"  # noqa: S105 (a test passphrase)
DATA = os.urandom(2 * _age.CHUNK_SIZE + 123)


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(DATA)
    return path


def _run_age(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    assert AGE is not None
    return subprocess.run([AGE, *map(str, args)], capture_output=True, timeout=60, check=False)


def _age_on_a_terminal(args: Sequence[str | Path], answers: Sequence[str], timeout: float = 60) -> tuple[int, str]:
    """Run age under a pseudo-terminal, typing each answer when a line asking for a passphrase appears.

    age reads passphrases from the terminal only (never stdin or the environment); a pty is that terminal.
    """
    assert AGE is not None
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes age
        os.execv(AGE, [AGE, *map(str, args)])  # noqa: S606 (a fixed program, no shell)
    output, pending, deadline = b"", list(answers), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and b"passphrase" in output.rsplit(b"\n", 1)[-1].lower():
                os.write(fd, pending.pop(0).encode() + b"\n")
        else:
            os.kill(pid, 9)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


# --- the age tool -------------------------------------------------------------------------------------------------


@needs_age
def test_age_decrypts_ours_with_our_key_files(tmp_path: Path, plain: Path) -> None:
    """`modelshield keygen` files are age's: `age -d -i NAME.key` and `age -R NAME.pub` use them as they are."""
    keys = [generate_keypair(KeyAlgorithm.X25519) for _ in range(2)]
    files = [write_keypair(k, tmp_path / "keys", name=f"k{i}") for i, k in enumerate(keys)]
    enc = tmp_path / "model.age"
    encrypt_file(plain, enc, recipients=[k.public() for k in keys])
    for private, _ in files:
        done = _run_age("-d", "-i", private, enc)
        assert done.returncode == 0, done.stderr
        assert done.stdout == DATA
    from_age = tmp_path / "from-age.age"
    done = _run_age("-R", files[0][1], "-R", files[1][1], "-o", from_age, plain)
    assert done.returncode == 0, done.stderr
    for key in keys:
        decrypt_file(from_age, tmp_path / "out.bin", identities=[key], overwrite=True)
        assert (tmp_path / "out.bin").read_bytes() == DATA


@needs_age
def test_ours_decrypts_age_with_age_keygen_keys(tmp_path: Path, plain: Path) -> None:
    identity = tmp_path / "key.txt"
    assert subprocess.run([str(AGE_KEYGEN), "-o", str(identity)], capture_output=True, check=False).returncode == 0
    recipient = subprocess.run(
        [str(AGE_KEYGEN), "-y", str(identity)], capture_output=True, text=True, check=True
    ).stdout.strip()
    enc = tmp_path / "model.age"
    assert _run_age("-r", recipient, "-o", enc, plain).returncode == 0
    assert inspect_encrypted(enc).stanza_types == ("X25519",)
    decrypt_file(enc, tmp_path / "out.bin", identities=load_identities(identity))
    assert (tmp_path / "out.bin").read_bytes() == DATA
    (ours,) = load_recipients(_write(tmp_path / "r.txt", f"# a comment\n{recipient}\n"))
    encrypt_file(plain, tmp_path / "ours.age", recipients=[ours])
    done = _run_age("-d", "-i", identity, tmp_path / "ours.age")
    assert (done.returncode, done.stdout) == (0, DATA)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@needs_age
def test_age_decrypts_ours_with_a_passphrase(tmp_path: Path, plain: Path) -> None:
    enc, out = tmp_path / "model.age", tmp_path / "out.bin"
    encrypt_file(plain, enc, passphrase=PASSWORD.encode(), scrypt_work_factor=15)
    code, transcript = _age_on_a_terminal(["-d", "-o", out, enc], [PASSWORD])
    assert code == 0, transcript
    assert out.read_bytes() == DATA


@needs_age
def test_ours_decrypts_age_with_a_passphrase(tmp_path: Path, plain: Path) -> None:
    enc, out = tmp_path / "model.age", tmp_path / "out.bin"
    code, transcript = _age_on_a_terminal(["-p", "-o", enc, plain], [PASSWORD, PASSWORD])
    assert code == 0, transcript
    assert inspect_encrypted(enc).stanza_types == ("scrypt",)
    decrypt_file(enc, out, passphrase=PASSWORD.encode())
    assert out.read_bytes() == DATA


@needs_age
def test_age_reads_our_passphrase_protected_identity_file(tmp_path: Path, plain: Path) -> None:
    key = generate_keypair(KeyAlgorithm.X25519)
    private, _ = write_keypair(key, tmp_path / "keys", passphrase=PASSWORD.encode())
    assert private.read_bytes().startswith(b"age-encryption.org/v1\n-> scrypt ")
    enc, out = tmp_path / "model.age", tmp_path / "out.bin"
    encrypt_file(plain, enc, recipients=[key.public()])
    code, transcript = _age_on_a_terminal(["-d", "-i", private, "-o", out, enc], [PASSWORD])
    assert code == 0, transcript
    assert out.read_bytes() == DATA


@needs_age
def test_age_has_post_quantum_recipients_or_says_why_not(tmp_path: Path, plain: Path) -> None:
    """age 1.3 and later read our post-quantum files; Debian's age 1.1 has no -pq (typage covers it below)."""
    assert AGE_KEYGEN is not None
    generated = subprocess.run([AGE_KEYGEN, "-pq"], capture_output=True, text=True, check=False)
    if generated.returncode != 0:
        pytest.skip("this age has no post-quantum recipients (age-keygen -pq needs age 1.3 or later)")
    identity = _write(tmp_path / "pq.txt", generated.stdout)
    (key,) = load_identities(identity)
    assert key.algorithm is KeyAlgorithm.X25519_MLKEM768
    enc = tmp_path / "model.age"
    encrypt_file(plain, enc, recipients=[key.public()])
    done = _run_age("-d", "-i", identity, enc)
    assert (done.returncode, done.stdout) == (0, DATA)


# --- rage, through pyrage -----------------------------------------------------------------------------------------


def test_rage_both_ways(tmp_path: Path, plain: Path) -> None:
    pyrage = pytest.importorskip("pyrage", reason="pyrage (rage's Python binding) is not installed")
    keys = [generate_keypair(KeyAlgorithm.X25519) for _ in range(2)]
    enc = tmp_path / "model.age"
    encrypt_file(plain, enc, recipients=[k.public() for k in keys])
    for key in keys:
        assert pyrage.decrypt(enc.read_bytes(), [pyrage.x25519.Identity.from_str(key.age_identity())]) == DATA
    theirs = tmp_path / "rage.age"
    theirs.write_bytes(
        pyrage.encrypt(DATA, [pyrage.x25519.Recipient.from_str(k.public().age_recipient()) for k in keys])
    )
    for key in keys:
        decrypt_file(theirs, tmp_path / "out.bin", identities=[key], overwrite=True)
        assert (tmp_path / "out.bin").read_bytes() == DATA
    # rage's own keys map to ours.
    generated = pyrage.x25519.Identity.generate()
    assert (
        str(generated.to_public())
        == load_identities(_write(tmp_path / "g", str(generated)))[0].public().age_recipient()
    )


@pytest.mark.slow  # rage picks its scrypt work factor by timing: about 2^20, 1 GiB and seconds here
def test_rage_passphrase_both_ways(tmp_path: Path, plain: Path) -> None:
    pyrage = pytest.importorskip("pyrage", reason="pyrage (rage's Python binding) is not installed")
    enc = tmp_path / "model.age"
    encrypt_file(plain, enc, passphrase=PASSWORD.encode(), scrypt_work_factor=15)
    assert pyrage.passphrase.decrypt(enc.read_bytes(), PASSWORD) == DATA
    theirs = tmp_path / "rage.age"
    theirs.write_bytes(pyrage.passphrase.encrypt(DATA, PASSWORD))
    decrypt_file(theirs, tmp_path / "out.bin", passphrase=PASSWORD.encode(), max_scrypt_work_factor=22)
    assert (tmp_path / "out.bin").read_bytes() == DATA


# --- typage: post-quantum -----------------------------------------------------------------------------------------

_ORACLE = """
const age = await import(process.argv[1]);
const [cmd, key, inp, out] = process.argv.slice(2);
const { readFileSync, writeFileSync } = await import("node:fs");
if (cmd === "decrypt") {
  const d = new age.Decrypter(); d.addIdentity(key); writeFileSync(out, await d.decrypt(readFileSync(inp)));
} else if (cmd === "encrypt") {
  const e = new age.Encrypter(); e.addRecipient(key); writeFileSync(out, await e.encrypt(readFileSync(inp)));
} else { process.stdout.write(await age.identityToRecipient(key)); }
"""


def _typage() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node is not installed (typage, the TypeScript age, checks post-quantum interoperability)")
    root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, check=False).stdout.strip()
    index = Path(root) / "age-encryption" / "dist" / "index.js"
    if not index.is_file():
        pytest.skip("typage is not installed (npm install -g age-encryption)")
    return [node, "--input-type=module", "-e", _ORACLE, "--", index.as_uri()]


def test_typage_post_quantum_both_ways(tmp_path: Path, plain: Path) -> None:
    typage = _typage()
    key: PrivateKeySet = generate_keypair(KeyAlgorithm.X25519_MLKEM768)

    def run(*args: str | Path) -> str:
        done = subprocess.run([*typage, *map(str, args)], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("recipient", key.age_identity()) == key.public().age_recipient()
    ours, theirs = tmp_path / "ours.age", tmp_path / "typage.age"
    encrypt_file(plain, ours, recipients=[key.public()])
    run("decrypt", key.age_identity(), ours, tmp_path / "typage.out")
    assert (tmp_path / "typage.out").read_bytes() == DATA
    run("encrypt", key.public().age_recipient(), plain, theirs)
    assert inspect_encrypted(theirs).post_quantum
    decrypt_file(theirs, tmp_path / "out.bin", identities=[key])
    assert (tmp_path / "out.bin").read_bytes() == DATA
