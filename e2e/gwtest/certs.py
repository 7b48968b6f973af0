"""Certificates for the TLS tests, made at test time in a temporary directory (no private key
is ever committed): CAs, server leaves (RSA or EC, exact names, a wildcard, an expired one,
one for the wrong name, one from an unrelated CA) and client certificates for mTLS.

Made with python3-cryptography (Debian's package), not the openssl command: an expired
certificate needs a validity period in the past, which `openssl req -x509` cannot write
without `openssl ca` and its database, and one process making every key is quicker than a
dozen openssl runs. Files are PEM; keys are written 0600 (the gateway warns about a key
readable by others) in the traditional encodings BearSSL decodes ("EC PRIVATE KEY", SEC1;
"RSA PRIVATE KEY", PKCS#1), or PKCS#8 ("PRIVATE KEY") when asked.

    pki = Pki(directory)              # a CA, a client CA and an unrelated CA, made at once
    leaf = pki.leaf(["gw.example.test"], key="rsa")
    leaf.cert, leaf.key               # paths: the certificate (the chain a server sends), its key
    pki.ca.cert                       # what a client trusts
    pki.client("alice")               # CN=alice, signed by pki.client_ca

The session fixture `pki` (e2e/conftest.py) holds the usual set, made once per run:
pki.server_ec, server_rsa, wildcard, expired, wrong_name, foreign, client_cert (CN alice) and
foreign_client (CN mallory, signed by the unrelated CA).
"""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Names the default server certificate covers: what the tests connect to by name or address.
SERVER_NAMES = ["localhost", "gw.example.test", "127.0.0.1", "::1"]
WILDCARD = "*.example.test"
WRONG_NAME = "wrong.invalid"
FIXED_FROM = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
FIXED_TO = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


def _key(kind):
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError("key kind %r: expected 'ec' or 'rsa'" % kind)


def _write(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # the umask may have taken bits off at creation
    return path


def _san(names):
    out = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


class Cert:
    """One certificate and its key on disk. cert: the certificate (PEM), which is also the
    whole chain a server sends: there are no intermediates, and the root is not sent (a
    client must already trust it; sent, it turns "unknown issuer" into "self-signed
    certificate in chain"); key: the private key (0600). obj / private_key: the
    cryptography objects; issuer: the Cert that signed it (None for a CA)."""

    def __init__(self, directory, name, obj, private_key, issuer=None, pkcs8=False, suffix=".crt"):
        self.name = name
        self.obj = obj
        self.private_key = private_key
        self.issuer = issuer
        pem = obj.public_bytes(serialization.Encoding.PEM)
        self.cert = _write(os.path.join(directory, name + suffix), pem, 0o644)
        fmt = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
        key_pem = private_key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        self.key = _write(os.path.join(directory, name + ".key"), key_pem, 0o600)

    @property
    def fingerprint_sha256(self):
        """The SHA-256 of the certificate's DER, lowercase hex (what mTLS headers carry)."""
        return self.obj.fingerprint(hashes.SHA256()).hex()

    @property
    def common_name(self):
        attrs = self.obj.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return attrs[0].value if attrs else None

    def __repr__(self):
        return "Cert(%s)" % self.name


class Pki:
    """A small PKI in DIRECTORY: ca (signs servers), client_ca (signs clients), other_ca
    (unrelated: what it signs must fail against the other two). The CAs have EC P-256 keys."""

    def __init__(self, directory, fixed=False, suffix=".crt"):
        """FIXED: every certificate is valid from 2020-01-01 to 2049-12-31 (an expired one:
        2020-01-01 to 2020-01-02), so that tests which verify at a time of their choosing
        (the C unit tests) do not depend on the day they run; otherwise validity is around
        now. SUFFIX: the certificates' file name ending."""
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.fixed = fixed
        self.suffix = suffix
        self.now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.ca = self.make_ca("ca", "gw e2e CA")
        self.client_ca = self.make_ca("client-ca", "gw e2e client CA")
        self.other_ca = self.make_ca("other-ca", "unrelated CA")

    def _sign(self, subject_cn, public_key, issuer, issuer_key, *, ca=False, names=None, usage=None,
              not_before=None, not_after=None):
        if self.fixed:
            nb = not_before or FIXED_FROM
            na = not_after or FIXED_TO
        else:
            nb = not_before or self.now - datetime.timedelta(hours=1)
            na = not_after or self.now + datetime.timedelta(days=30)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
        b = (x509.CertificateBuilder()
             .subject_name(subject)
             .issuer_name(issuer.obj.subject if issuer else subject)
             .public_key(public_key)
             .serial_number(x509.random_serial_number())
             .not_valid_before(nb)
             .not_valid_after(na)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
        if issuer:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                critical=False)
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                                              key_cert_sign=True, crl_sign=True, encipher_only=False,
                                              decipher_only=False), critical=True)
        else:
            rsa_key = isinstance(public_key, rsa.RSAPublicKey)
            b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                              key_encipherment=rsa_key, data_encipherment=False,
                                              key_agreement=False, key_cert_sign=False, crl_sign=False,
                                              encipher_only=False, decipher_only=False), critical=True)
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if names:
            b = b.add_extension(_san(names), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def make_ca(self, name, cn, key="ec"):
        """A self-signed CA certificate NAME.crt with its key NAME.key."""
        k = _key(key)
        obj = self._sign(cn, k.public_key(), None, k, ca=True)
        return Cert(self.dir, name, obj, k, suffix=self.suffix)

    def leaf(self, names, key="ec", ca=None, expired=False, name=None, pkcs8=False):
        """A server certificate for NAMES (DNS names, wildcards or IP addresses; the first is
        also its CN) signed by CA (default: self.ca). EXPIRED: valid from 30 days ago until
        yesterday."""
        ca = ca or self.ca
        k = _key(key)
        nb = na = None
        if expired and self.fixed:
            nb, na = FIXED_FROM, FIXED_FROM + datetime.timedelta(days=1)
        elif expired:
            nb = self.now - datetime.timedelta(days=30)
            na = self.now - datetime.timedelta(days=1)
        obj = self._sign(names[0], k.public_key(), ca, ca.private_key, names=names,
                         usage=ExtendedKeyUsageOID.SERVER_AUTH, not_before=nb, not_after=na)
        stem = name or "leaf-" + names[0].replace("*", "star").replace(":", "_")
        return Cert(self.dir, stem, obj, k, issuer=ca, pkcs8=pkcs8, suffix=self.suffix)

    def client(self, cn, key="ec", ca=None, name=None, pkcs8=False):
        """A client certificate with subject CN=CN, signed by CA (default: self.client_ca)."""
        ca = ca or self.client_ca
        k = _key(key)
        obj = self._sign(cn, k.public_key(), ca, ca.private_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        return Cert(self.dir, name or "client-" + cn, obj, k, issuer=ca, pkcs8=pkcs8, suffix=self.suffix)


def standard_pki(directory):
    """The set the session fixture offers (see the module's docstring)."""
    p = Pki(directory)
    p.server_ec = p.leaf(SERVER_NAMES, key="ec", name="server-ec")
    p.server_rsa = p.leaf(SERVER_NAMES, key="rsa", name="server-rsa")
    p.wildcard = p.leaf([WILDCARD], key="ec", name="wildcard")
    p.expired = p.leaf(SERVER_NAMES, key="ec", expired=True, name="expired")
    p.wrong_name = p.leaf([WRONG_NAME], key="ec", name="wrong-name")
    p.foreign = p.leaf(SERVER_NAMES, key="ec", ca=p.other_ca, name="foreign")
    p.client_cert = p.client("alice", name="client-alice")
    p.foreign_client = p.client("mallory", ca=p.other_ca, name="client-foreign")
    return p


def unit_set(directory):
    """The files the C unit tests read (milestones/04-http/tests/fixtures/tls_certs.h), with
    fixed dates (2020-01-01 .. 2049-12-31), certificates ending in .pem:
      ca.pem ca.key             the CA (EC P-256): signs the servers and client.pem
      ca2.pem                   an unrelated CA (signs foreign.pem)
      rsa.pem rsa.key           RSA 2048 leaf: localhost, a.example.com, 127.0.0.1; key PKCS#8
      rsa-trad.key              the same key, traditional (BEGIN RSA PRIVATE KEY)
      rsa-chain.pem             rsa.pem then ca.pem (a chain, leaf first)
      ec.pem ec.key             EC leaf: b.example.com, *.wild.example.com; key PKCS#8
      ec-trad.key               the same key, traditional (BEGIN EC PRIVATE KEY)
      expired.pem expired.key   EC leaf for expired.example.com, 2020-01-01 .. 2020-01-02
      client.pem client.key     client certificate CN=client-one, signed by ca
      foreign.pem foreign.key   client certificate CN=intruder, signed by ca2"""
    p = Pki(directory, fixed=True, suffix=".pem")
    ca, ca2 = p.make_ca("ca", "gw test CA"), p.make_ca("ca2", "gw other CA")
    rsa_leaf = p.leaf(["localhost", "a.example.com", "127.0.0.1"], key="rsa", ca=ca, name="rsa", pkcs8=True)
    _write(os.path.join(p.dir, "rsa-trad.key"), rsa_leaf.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()), 0o600)
    with open(rsa_leaf.cert, "rb") as a, open(ca.cert, "rb") as b:
        _write(os.path.join(p.dir, "rsa-chain.pem"), a.read() + b.read(), 0o644)
    ec_leaf = p.leaf(["b.example.com", "*.wild.example.com"], key="ec", ca=ca, name="ec", pkcs8=True)
    _write(os.path.join(p.dir, "ec-trad.key"), ec_leaf.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()), 0o600)
    p.leaf(["expired.example.com"], key="ec", ca=ca, expired=True, name="expired", pkcs8=True)
    p.client("client-one", ca=ca, name="client", pkcs8=True)
    p.client("intruder", ca=ca2, name="foreign", pkcs8=True)
    return p


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 3 or sys.argv[1] != "unit":
        sys.exit("usage: certs.py unit DIR   (the C unit tests' set, see unit_set)")
    unit_set(sys.argv[2])
