#!/usr/bin/env python3
"""Makes the keys, certificates and JWTs the compatibility cases use.

Usage: python3 policy/compat/make_fixtures.py [OUT_DIR]   (default: policy/compat/fixtures)

Run once; the cases under policy/compat/cases/ embed what it wrote (tokens in
input.json headers, public keys / certificates in policy.rego or data.json),
so running it again makes new keys that the cases do not use. Only public
material and tokens are kept: the private keys are thrown away. Needs the
`cryptography` package. Everything time-related is fixed (2026-01-01 ...).
"""

import base64
import datetime
import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

T0 = 1767225600  # 2026-01-01T00:00:00Z
HS_SECRET = "usher-compat-shared-secret"


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def seg(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def sign_hs256(header, claims, secret=HS_SECRET):
    signing = f"{seg(header)}.{seg(claims)}"
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64url(sig)}"


def sign_rs256(key, header, claims):
    signing = f"{seg(header)}.{seg(claims)}"
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing}.{b64url(sig)}"


def sign_es256(key, header, claims):
    signing = f"{seg(header)}.{seg(claims)}"
    r, s = decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def name(cn):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "usher compat"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "fixtures")
    out.mkdir(parents=True, exist_ok=True)
    nb = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    na = datetime.datetime(2035, 1, 1, tzinfo=datetime.timezone.utc)

    # RS256 signer with a self-signed certificate.
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_cert = (
        x509.CertificateBuilder()
        .subject_name(name("jwt-signer.usher.test"))
        .issuer_name(name("jwt-signer.usher.test"))
        .public_key(rsa_key.public_key())
        .serial_number(4242)
        .not_valid_before(nb)
        .not_valid_after(na)
        .sign(rsa_key, hashes.SHA256())
    )
    (out / "rs256.crt.pem").write_bytes(rsa_cert.public_bytes(serialization.Encoding.PEM))
    (out / "rs256.pub.pem").write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    # ES256 signer, published as a JWKS with a kid.
    ec_key = ec.generate_private_key(ec.SECP256R1())
    nums = ec_key.public_key().public_numbers()
    jwks = {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "kid": "compat-es256",
                "alg": "ES256",
                "use": "sig",
                "x": b64url(nums.x.to_bytes(32, "big")),
                "y": b64url(nums.y.to_bytes(32, "big")),
            }
        ]
    }
    (out / "es256.jwks.json").write_text(json.dumps(jwks, indent=2) + "\n")

    # A mesh CA and a workload certificate with a SPIFFE URI SAN.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("usher compat CA"))
        .issuer_name(name("usher compat CA"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("billing"))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(77001)
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier("spiffe://mesh.usher.test/ns/payments/sa/billing"),
                    x509.DNSName("billing.payments.svc"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (out / "ca.crt.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (out / "leaf.crt.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (out / "leaf.crt.der.b64").write_text(
        base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode() + "\n"
    )

    claims = {
        "iss": "https://issuer.usher.test",
        "aud": "orders",
        "sub": "alice",
        "role": "admin",
        "scope": "orders:read orders:write",
        "iat": T0,
        "nbf": T0,
        "exp": T0 + 3600,
    }
    tokens = {
        "hs256": sign_hs256({"alg": "HS256", "typ": "JWT"}, claims),
        "hs256_guest": sign_hs256(
            {"alg": "HS256", "typ": "JWT"},
            {**claims, "sub": "bob", "role": "guest", "scope": "orders:read"},
        ),
        "rs256": sign_rs256(rsa_key, {"alg": "RS256", "typ": "JWT"}, claims),
        "es256": sign_es256(ec_key, {"alg": "ES256", "typ": "JWT", "kid": "compat-es256"}, claims),
    }
    h, p, s = tokens["rs256"].split(".")
    tampered = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    tampered["role"] = "superuser"
    tokens["rs256_tampered"] = f"{h}.{seg(tampered)}.{s}"
    (out / "tokens.json").write_text(
        json.dumps({"hs_secret": HS_SECRET, "t0": T0, "claims": claims, "tokens": tokens}, indent=2)
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
