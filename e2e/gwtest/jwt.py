"""HS256 tokens for the JWT middleware's tests (milestone 04): JWT_SECRET, jwt_token."""
import base64
import hashlib
import hmac
import json

JWT_SECRET = "e2e-hs256-secret-0123456789abcdefghijkl"


def b64u(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_token(claims, secret=JWT_SECRET, header=None, sign=True):
    hdr = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing = b64u(json.dumps(hdr, separators=(",", ":")).encode()) + "." + \
        b64u(json.dumps(claims, separators=(",", ":")).encode())
    if not sign:
        return signing + "."
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64u(sig)


# ---- RS256 and ES256: keys made with openssl at test time ------------------------------------


def _der_ecdsa_to_raw(der, size=32):
    """An ECDSA signature as openssl writes it (DER: SEQUENCE {INTEGER r, INTEGER s}) to the
    fixed-size r||s that JWS uses (RFC 7518 3.4)."""
    assert der[0] == 0x30, der
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02, der
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(size, b"\0")
        i += 2 + n
    return out


class AsymmetricKey:
    """A key pair for ALG ("RS256": RSA 2048; "ES256": EC P-256) made with the openssl command
    in DIRECTORY: .cert (a self-signed PEM certificate: BearSSL reads no bare public key
    PEM), .jwks (a JWKS file with the public key under KID), and .token(claims) signs."""

    def __init__(self, directory, alg, kid):
        import os
        import subprocess
        self.alg, self.kid = alg, kid
        base = os.path.join(str(directory), kid)
        self.key, self.cert, self.jwks = base + ".key", base + ".crt", base + ".jwks"
        newkey = ["-newkey", "rsa:2048"] if alg == "RS256" else \
            ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", self.key, "-out", self.cert,
                        "-days", "2", "-subj", "/CN=gw e2e " + kid], check=True, capture_output=True)
        if alg == "RS256":
            mod = subprocess.run(["openssl", "rsa", "-in", self.key, "-noout", "-modulus"], check=True,
                                 capture_output=True, text=True).stdout.strip().split("=", 1)[1]
            jwk = {"kty": "RSA", "n": b64u(bytes.fromhex(mod)), "e": "AQAB"}
        else:
            der = subprocess.run(["openssl", "ec", "-in", self.key, "-pubout", "-outform", "DER"], check=True,
                                 capture_output=True).stdout
            point = der[-65:]  # the uncompressed point 04 || x || y ends the SubjectPublicKeyInfo
            assert point[0] == 4, der
            jwk = {"kty": "EC", "crv": "P-256", "x": b64u(point[1:33]), "y": b64u(point[33:])}
        jwk.update({"kid": kid, "use": "sig", "alg": alg})
        with open(self.jwks, "w") as f:
            json.dump({"keys": [jwk]}, f)

    def token(self, claims, kid=None):
        import subprocess
        hdr = {"alg": self.alg, "typ": "JWT", "kid": kid or self.kid}
        signing = b64u(json.dumps(hdr, separators=(",", ":")).encode()) + "." + \
            b64u(json.dumps(claims, separators=(",", ":")).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing.encode(),
                             check=True, capture_output=True).stdout
        if self.alg == "ES256":
            sig = _der_ecdsa_to_raw(sig)
        return signing + "." + b64u(sig)
