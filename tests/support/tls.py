"""TLS certificates for tests: a CA and a server certificate it signed, made with openssl.

Theory of operation: :func:`certificates` writes, in a directory of the
test's choosing, what ``edgekv up --tls`` writes — a throwaway CA and a
certificate for ``localhost``, ``127.0.0.1`` and ``::1``
(:func:`edgekv.tls.make_local_certificates`, which runs the ``openssl``
command) — so that a test exercises the product's own certificates. A second
call in another directory makes an unrelated CA, which a test uses as the
wrong one; ``hosts`` makes a certificate for other names (one that does not
name 127.0.0.1, say). Without ``openssl`` the test is skipped outside CI and
fails in CI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from edgekv.tls import LOCAL_HOSTS, LocalCertificates, make_local_certificates


def require_openssl() -> None:
    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("the openssl command is not installed; .ci/run must install it")
        pytest.skip("the openssl command is not installed (apt-get install openssl)")


def certificates(directory: Path, hosts: tuple[str, ...] = LOCAL_HOSTS) -> LocalCertificates:
    """A new CA and a server certificate for ``hosts``, in ``directory``."""
    require_openssl()
    return make_local_certificates(directory, hosts)


def server_flags(made: LocalCertificates) -> list[str]:
    """``--tls-cert FILE --tls-key FILE``."""
    return ["--tls-cert", str(made.cert), "--tls-key", str(made.key)]


def client_flags(made: LocalCertificates) -> list[str]:
    """``--tls-ca FILE``."""
    return ["--tls-ca", str(made.ca)]
