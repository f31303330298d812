"""Dask security: pickles travel only over TLS, or plain tcp on loopback / by explicit opt-in.

A Dask client unpickles what the scheduler and workers send, so a plain ``tcp://`` cluster that
others can reach can run code in the sweep's process. Plain tcp to another host is refused
unless ``--allow-insecure-scheduler``; ``tls://`` with certificates runs the sweep (a real TLS
LocalCluster with a CA and a certificate generated here).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backtester.cli import main
from backtester.errors import ConfigError
from backtester.sweep.executors import (
    DaskExecutor,
    DaskSecurity,
    SerialExecutor,
    check_scheduler,
    make_executor,
)
from tests.unit.test_sweep_runner import run, toy_chunk

distributed = pytest.importorskip("distributed")


@pytest.mark.parametrize(
    "address",
    ["tcp://10.1.2.3:8786", "tcp://scheduler.example.org:8786", "tcp://0.0.0.0:8786"],
)
def test_plain_tcp_to_another_host_is_refused(address: str) -> None:
    with pytest.raises(ConfigError) as info:
        DaskExecutor(toy_chunk, address)
    message = str(info.value)
    assert message.startswith(f"--scheduler {address} is plain tcp to another host")
    assert "--allow-insecure-scheduler" in message and "tls://" in message
    assert "\n" not in message
    # the user can opt in for a trusted network
    assert check_scheduler(address, allow_insecure=True)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tcp://localhost:1", "tcp://[::1]:5"])
def test_plain_tcp_on_loopback_is_accepted(address: str) -> None:
    assert isinstance(make_executor(toy_chunk, scheduler=address), DaskExecutor)


def test_plain_tcp_warns_at_run_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # nothing listens on port 9: the warning comes before the connection attempt
    executor = DaskExecutor(toy_chunk, "tcp://127.0.0.1:9", timeout="1s")
    with (
        caplog.at_level(logging.WARNING, logger="backtester.sweep.executors"),
        pytest.raises(ConfigError, match="cannot connect"),
    ):
        run(tmp_path / "x", executor=executor)
    assert "plain tcp is unauthenticated and carries pickles" in caplog.text


def test_bad_addresses_and_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs certificates: pass --tls-ca-file, --tls-cert"):
        DaskExecutor(toy_chunk, "tls://10.1.2.3:8786")
    for bad in ("ws://127.0.0.1:1", "tcp://127.0.0.1", "tcp://:8786", "127.0.0.1:8786"):
        with pytest.raises(ConfigError, match="scheduler must be an address like tls://"):
            DaskExecutor(toy_chunk, bad)
    with pytest.raises(ConfigError, match=r"--tls-ca-file '.*nope.pem' is not a file"):
        DaskSecurity(ca_file=tmp_path / "nope.pem", cert=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match="apply to --scheduler"):
        make_executor(toy_chunk, workers=1, allow_insecure=True)


def test_cli_refuses_insecure_scheduler_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.test_cli_sweep import CONFIG as CLI_CONFIG

    config = tmp_path / "cfg.toml"
    config.write_text(CLI_CONFIG)
    out = tmp_path / "r"
    code = main(["sweep", str(config), "--out", str(out), "--scheduler", "tcp://10.9.8.7:8786"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "plain tcp to another host" in err and "--allow-insecure-scheduler" in err
    assert not out.exists()  # refused before any work or file
    code = main(["sweep", str(config), "--out", str(out), "--tls-cert", "x.pem"])
    assert code == 2 and "--tls-ca-file and --tls-cert go together" in capsys.readouterr().err


# -- a real TLS cluster ---------------------------------------------------------------------------


def write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    # a self-signed CA and one certificate (for 127.0.0.1) signed by it, used by every party
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: Any, issuer: Any, issuer_key: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backtester test CA")])
    ca_cert = build("backtester test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", key, ca_name, ca_key, ca=False)
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, DaskSecurity]]:
    ca, cert, key = write_certificates(tmp_path_factory.mktemp("tls"))
    security = distributed.Security(
        tls_ca_file=str(ca),
        tls_scheduler_cert=str(cert),
        tls_scheduler_key=str(key),
        tls_worker_cert=str(cert),
        tls_worker_key=str(key),
        tls_client_cert=str(cert),
        tls_client_key=str(key),
        require_encryption=True,
    )
    with distributed.LocalCluster(
        n_workers=1,
        processes=False,
        threads_per_worker=1,
        host="127.0.0.1",
        protocol="tls://",
        security=security,
        dashboard_address=None,
        silence_logs=50,
    ) as cluster:
        yield cluster, DaskSecurity(ca_file=ca, cert=cert, key=key)


def test_a_tls_cluster_runs_the_sweep_exactly_like_local(
    tmp_path: Path, tls_cluster: tuple[Any, DaskSecurity]
) -> None:
    # Arrange
    cluster, security = tls_cluster
    assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
    local = run(tmp_path / "local", executor=SerialExecutor(toy_chunk))
    # Act
    executor = make_executor(toy_chunk, scheduler=cluster.scheduler_address, security=security)
    remote = run(tmp_path / "tls", executor=executor)
    # Assert
    pd.testing.assert_frame_equal(remote.table, local.table, check_exact=True)


def test_a_tls_cluster_without_a_client_certificate_is_not_reached(
    tls_cluster: tuple[Any, DaskSecurity],
) -> None:
    # the scheduler requires TLS: a plain tcp client to its port gets nothing
    cluster, _ = tls_cluster
    port = cluster.scheduler_address.rsplit(":", 1)[1]
    with pytest.raises((OSError, TimeoutError)):
        distributed.Client(f"tcp://127.0.0.1:{port}", timeout="2s", set_as_default=False)
