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
