"""TLS for every edgekv server and client: the files, checked once, and a local CA.

Theory of operation: a server is given ``--tls-cert FILE --tls-key FILE`` (both
or neither) and a client ``--tls-ca FILE``, the CA that signed the servers'
certificates. Files are read and checked when a node or a client starts —
with the standard library's :mod:`ssl`, which says in one line what is wrong
(a key that is not the certificate's, a file that is not PEM) — so that a bad
file is one ``edgekv: error:`` line at start, never a handshake that fails
later for every caller. What is read is kept as PEM bytes: gRPC takes bytes
(:func:`grpc.ssl_server_credentials`, :func:`grpc.ssl_channel_credentials`),
aiohttp an :class:`ssl.SSLContext` (:func:`server_context`,
:func:`client_context`).

gRPC checks a server's certificate against the name the client dialled (the
channel's authority; :mod:`edgekv.channels` says which for an address list),
so a certificate must name the host clients use: ``localhost``, an IP address,
a Kubernetes Service's name.

:func:`make_local_certificates` makes a throwaway CA and one certificate for
``localhost``, ``127.0.0.1`` and ``::1`` with the ``openssl`` command — what
``edgekv up --tls`` and the tests use; the files are named as a Kubernetes TLS
Secret names them (``tls.crt``, ``tls.key``, ``ca.crt``).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgekv.core.errors import UsageError
from edgekv.private_files import make_private_dirs

# The names a Kubernetes TLS Secret gives its keys; edgekv up --tls writes the same.
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_FILE = "ca.crt"
# The CA's own key, kept beside the CA (edgekv up's throwaway CA only).
CA_KEY_FILE = "ca.key"
# The variable every client reads its CA from when no --tls-ca / tls_ca= is given.
CA_VARIABLE = "EDGEKV_TLS_CA"
# How long a throwaway certificate is valid: a local cluster lives hours, not years.
LOCAL_CERT_DAYS = 30
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A server's certificate chain and private key, read and checked to belong together."""

    cert_path: Path
    key_path: Path
    cert_pem: bytes
    key_pem: bytes


def server_tls(
    cert: str | os.PathLike[str] | None, key: str | os.PathLike[str] | None
) -> ServerTls | None:
    """``--tls-cert`` and ``--tls-key`` read and checked; None when neither was given."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if key is None else ("--tls-key", "--tls-cert")
        raise UsageError(f"{given} needs {missing} too (a server's certificate and its key)")
    cert_path, key_path = Path(cert), Path(key)
    cert_pem = _read(cert_path, "--tls-cert")
    key_pem = _read(key_path, "--tls-key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        raise UsageError(
            f"--tls-cert {cert_path} and --tls-key {key_path} are not a PEM certificate and "
            f"its private key ({_reason(exc)})"
        ) from None
    return ServerTls(cert_path, key_path, cert_pem, key_pem)


def read_ca(path: str | os.PathLike[str], flag: str = "--tls-ca") -> bytes:
    """The PEM CA certificate(s) in ``path``; one line when it is unreadable or no CA."""
    ca_path = Path(path)
    pem = _read(ca_path, flag)
    try:
        ssl.create_default_context(cafile=str(ca_path))
    except (ssl.SSLError, ValueError) as exc:
        raise UsageError(f"{flag} {ca_path}: not a PEM CA certificate ({_reason(exc)})") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise UsageError(f"{flag} {ca_path}: not a PEM CA certificate (no certificate in it)")
    return pem


def server_context(tls: ServerTls) -> ssl.SSLContext:
    """The TLS context of an HTTPS server (the API node) with ``tls``'s certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_path, tls.key_path)
    return context


def client_context(ca: str | os.PathLike[str]) -> ssl.SSLContext:
    """The TLS context of an HTTPS client that trusts the CA in ``ca`` (and only it)."""
    read_ca(ca)  # the one-line error for a bad file
    return ssl.create_default_context(cafile=str(ca))


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None


def _reason(exc: BaseException) -> str:
    # ssl's messages carry the library's noise: "[SSL: KEY_VALUES_MISMATCH] key values
    # mismatch (_ssl.c:3874)" -> "key values mismatch".
    reason = getattr(exc, "reason", None)
    text = str(exc).split("] ", 1)[-1].rsplit(" (_ssl.c", 1)[0]
    return text if text else str(reason or type(exc).__name__)


@dataclass(frozen=True, slots=True)
class LocalCertificates:
    """The files :func:`make_local_certificates` wrote."""

    ca: Path
    cert: Path
    key: Path


def make_local_certificates(
    directory: Path, hosts: tuple[str, ...] = LOCAL_HOSTS, days: int = LOCAL_CERT_DAYS
) -> LocalCertificates:
    """A new CA and a server certificate it signed for ``hosts``, written in ``directory``
    (made private) as ``ca.crt``, ``tls.crt`` and ``tls.key``; the keys readable by
    their owner only. Needs the ``openssl`` command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise UsageError("making TLS certificates needs the openssl command; it is not on PATH")
    make_private_dirs(directory)
    names = ",".join(f"IP:{host}" if _is_ip(host) else f"DNS:{host}" for host in hosts)
    extensions = directory / "tls.ext"
    ca, ca_key = directory / CA_FILE, directory / CA_KEY_FILE
    cert, key, request = directory / CERT_FILE, directory / KEY_FILE, directory / "tls.csr"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    previous = os.umask(0o077)  # the keys are born private
    try:
        extensions.write_text(
            f"subjectAltName={names}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n",
            encoding="utf-8",
        )
        for command in (
            [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", str(days),
             "-subj", "/CN=edgekv throwaway CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            [openssl, "req", "-new", *ec, "-keyout", key, "-out", request, "-subj", "/CN=edgekv"],
            [openssl, "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-out", cert, "-days", str(days), "-extfile", extensions],
        ):  # fmt: skip
            done = subprocess.run(
                [str(part) for part in command], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise OSError(f"openssl could not make a TLS certificate: {last}")
    finally:
        os.umask(previous)
    request.unlink(missing_ok=True)
    return LocalCertificates(ca=ca, cert=cert, key=key)


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
