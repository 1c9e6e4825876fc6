"""
A private, throwaway slapd for the tests.

:func:`ldap_server` starts it on first use (once per test process) and
stops it when the process exits.  It listens on 127.0.0.1 for plain LDAP
(with StartTLS) and for LDAPS, and on 127.0.0.2 on the same ports: that
address is not in the server certificate, so hostname checks can be
tested.  The certificates come from a CA made for this run; a second,
unrelated CA is written too, for "wrong trust root" tests.

The directory (suffix ``dc=example,dc=com``) holds the entries in
:data:`USERS`, and the group :data:`ADMINS`.  Needs Debian's ``slapd`` (which also brings
``slapadd``/``slappasswd``); without it the tests fail.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .processes import MissingPart, free_port, stop_process
from .waiting import wait_for

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SLAPPASSWD = "/usr/sbin/slappasswd"
MODULE_PATH = "/usr/lib/ldap"
SCHEMA_DIR = "/etc/ldap/schema"

SUFFIX = "dc=example,dc=com"
PEOPLE = "ou=people,dc=example,dc=com"
STAFF = "ou=staff,dc=example,dc=com"


@dataclass(frozen=True)
class User:
    name: str  # what a client types as its user name
    dn: str  # written by hand, escaped per RFC 4514
    password: str


#: Everyone in the directory.  The DNs are spelled out literally (not built
#: with the code under test) so that a wrong escaper cannot agree with them.
USERS = {
    "jdoe": User("jdoe", "uid=jdoe," + PEOPLE, "s3cret"),
    "ann": User("Ann Smith", "cn=Ann Smith," + STAFF, "staff-pw"),
    "obrien": User("o'brien, jr", "uid=o'brien\\, jr," + PEOPLE, "irish"),
    "odd": User('#a+b=c;<d>"e"\\f', 'uid=\\#a\\+b\\=c\\;\\<d\\>\\"e\\"\\\\f,' + PEOPLE, "odd-pw"),
    # Another person with jdoe's short name, in the other branch.
    "staff-jdoe": User("jdoe", "uid=jdoe," + STAFF, "other-pw"),
}

#: A group (groupOfNames) whose members administer vmpoolerd in the tests
#: (Note [Administrators] in vmpoolerd/api/admins.py): Ann Smith alone.
GROUPS = "ou=groups,dc=example,dc=com"
ADMINS = "cn=vmpooler-admins," + GROUPS
ADMIN_MEMBERS = ("ann",)

#: An account that may search the directory (``service_account_hash``).
SERVICE = User("svc", "cn=svc," + SUFFIX, "svc-pw")


@dataclass(frozen=True)
class LdapServer:
    host: str  # 127.0.0.1: in the certificate
    port: int  # ldap:// (StartTLS offered)
    tls_port: int  # ldaps://
    mismatched_host: str  # 127.0.0.2, same ports: not in the certificate
    ca_file: str  # the CA that signed the server certificate
    other_ca_file: str  # a CA that signed nothing here
    directory: str  # the temp dir with conf, certs, database and log
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        """slapd's own output so far, for failure messages."""
        with open(os.path.join(self.directory, "slapd.log"), errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


_server: LdapServer | None = None


def ldap_server() -> LdapServer:
    """The running test slapd, started on the first call."""
    global _server
    if _server is None:
        _server = _start()
        atexit.register(_server.stop)
    return _server


def _start() -> LdapServer:
    for tool in (SLAPD, SLAPADD, SLAPPASSWD):
        if not os.access(tool, os.X_OK):
            raise MissingPart(tool, "slapd")
    directory = tempfile.mkdtemp(prefix="vmpoolerd-slapd-")
    try:
        return _start_in(directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _start_in(directory: str) -> LdapServer:
    def path(name: str) -> str:
        return os.path.join(directory, name)

    ca_key, ca_cert = _make_ca("vmpoolerd test CA")
    _write_pem(path("ca.pem"), ca_cert)
    _write_pem(path("other-ca.pem"), _make_ca("some other CA")[1])
    server_key, server_cert = _make_server_cert(ca_key, ca_cert)
    _write_pem(path("server.pem"), server_cert)
    with open(path("server.key"), "wb") as f:
        f.write(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    os.mkdir(path("db"))
    with open(path("slapd.conf"), "w") as conf:
        conf.write(_slapd_conf(directory))
    with open(path("data.ldif"), "w") as ldif:
        ldif.write(_ldif())
    subprocess.run(
        [SLAPADD, "-f", path("slapd.conf"), "-l", path("data.ldif")],
        check=True,
        capture_output=True,
    )

    host, mismatched_host = "127.0.0.1", "127.0.0.2"
    port, tls_port = free_port(host), free_port(host)
    addresses = [(h, p) for h in (host, mismatched_host) for p in (port, tls_port)]
    urls = " ".join(
        f"{scheme}://{h}:{p}/" for (h, p), scheme in zip(addresses, ["ldap", "ldaps"] * 2)
    )
    with open(path("slapd.log"), "wb") as log:
        process = subprocess.Popen(
            [SLAPD, "-f", path("slapd.conf"), "-h", urls, "-d", "0"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LdapServer(
        host=host,
        port=port,
        tls_port=tls_port,
        mismatched_host=mismatched_host,
        ca_file=path("ca.pem"),
        other_ca_file=path("other-ca.pem"),
        directory=directory,
        process=process,
    )
    try:
        _wait_listening(server, addresses)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_listening(server: LdapServer, addresses: list[tuple[str, int]]) -> None:
    waiting = list(addresses)

    def listening() -> bool:
        if server.process.poll() is not None:
            raise RuntimeError(f"slapd exited with {server.process.returncode}:\n{server.log()}")
        try:
            socket.create_connection(waiting[0], timeout=1).close()
        except OSError:
            return False
        waiting.pop(0)
        return not waiting

    wait_for(f"slapd to listen on {waiting}", listening, seconds=15, interval=0.05)


def _slapd_conf(directory: str) -> str:
    schemas = "".join(
        f"include {SCHEMA_DIR}/{name}.schema\n" for name in ("core", "cosine", "inetorgperson")
    )
    return f"""\
{schemas}
pidfile {directory}/slapd.pid
argsfile {directory}/slapd.args
modulepath {MODULE_PATH}
moduleload back_mdb

TLSCACertificateFile {directory}/ca.pem
TLSCertificateFile {directory}/server.pem
TLSCertificateKeyFile {directory}/server.key

database mdb
maxsize 10485760
suffix "{SUFFIX}"
directory {directory}/db

access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by * read
"""


def _ldif() -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        "dc: example\no: Example\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {STAFF}\nobjectClass: organizationalUnit\nou: staff\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: {ADMINS}\nobjectClass: groupOfNames\ncn: vmpooler-admins\n"
        + "".join(f"member: {USERS[name].dn}\n" for name in ADMIN_MEMBERS),
    ]
    for user in (*USERS.values(), SERVICE):
        rdn_type = user.dn.split("=", 1)[0]
        lines = [f"dn: {user.dn}", "objectClass: inetOrgPerson", f"{rdn_type}: {user.name}"]
        if rdn_type != "cn":
            lines.append(f"cn: {user.name}")
        lines.append(f"sn: {user.name.split()[-1]}")
        lines.append(f"userPassword: {_ssha(user.password)}")
        entries.append("".join(line + "\n" for line in lines))
    return "\n".join(entries)


def _ssha(password: str) -> str:
    result = subprocess.run(
        [SLAPPASSWD, "-h", "{SSHA}", "-s", password],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def _make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def _write_pem(path: str, cert: x509.Certificate) -> None:
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
