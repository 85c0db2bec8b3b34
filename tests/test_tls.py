import subprocess
import sys

import pytest
import trustme

from gateway.shared.tls import TlsError, server_context


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pem")
    ca = trustme.CA()
    leaf, other = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.2")
    paths = {name: directory / f"{name}.pem" for name in ("cert", "key", "other_key")}
    paths["cert"].write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    paths["key"].write_bytes(leaf.private_key_pem.bytes())
    paths["other_key"].write_bytes(other.private_key_pem.bytes())
    return {name: str(path) for name, path in paths.items()}


def test_no_files_no_tls():
    assert server_context("", "") is None


def test_a_matching_chain_and_key_serve_tls_1_2_or_later(pem_files):
    context = server_context(pem_files["cert"], pem_files["key"])
    assert context.minimum_version.name == "TLSv1_2"


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("cert", "", r"^tls_key: needed together with tls_cert"),
        ("", "key", r"^tls_cert: needed together with tls_key"),
        ("cert", "/nonexistent/key.pem", r"^tls_key: /nonexistent/key.pem: No such file or directory"),
        ("/nonexistent/cert.pem", "key", r"^tls_cert: /nonexistent/cert.pem: No such file or directory"),
        ("cert", "other_key", r"^tls_cert/tls_key: .* not a matching PEM certificate chain and key"),
        ("key", "key", r"^tls_cert/tls_key: .* not a matching PEM certificate chain and key"),
    ],
)
def test_unusable_files_name_the_key(pem_files, cert, key, message):
    with pytest.raises(TlsError, match=message):
        server_context(pem_files.get(cert, cert), pem_files.get(key, key))


def test_the_gateway_refuses_to_start_with_an_unusable_key(pem_files):
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--tls-cert", pem_files["cert"], "--tls-key",
         pem_files["other_key"]], capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "config error: tls_cert/tls_key:" in result.stderr
