"""A local token issuer for trying `ketacds serve` with real tokens (never for production).

    python examples/serve/dev_issuer.py init              # out/serve/: issuers.yaml, jwks.json, a private key
    python examples/serve/dev_issuer.py token URL         # a fresh ES384 token whose aud is URL
    python examples/serve/dev_issuer.py request           # out/serve/patient-view.json, from examples/fhir/

The key pair is made on your machine by `init` (nothing secret is shipped); the
service trusts it only if you pass `--issuers out/serve/issuers.yaml`. Needs the
server extra (`pip install 'ketacds[server]'`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://ehr.local.example/"
KID = "local-dev-1"
BUNDLE = ROOT / "examples" / "fhir" / "synthea-milan-beatty.json"


def init(directory: Path) -> None:
    """Make a P-384 key pair, its JWK Set and an issuers file in ``directory``."""
    key_file = directory / "private-key.pem"
    if key_file.exists():
        sys.exit(f"error: {key_file} exists; delete {directory} to start again")
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = {"keys": [{**public, "kid": KID, "use": "sig", "alg": "ES384"}]}
    (directory / "jwks.json").write_text(json.dumps(jwks, indent=1) + "\n", encoding="utf-8")
    (directory / "issuers.yaml").write_text(
        f"# Local development only: trusts the key pair made by dev_issuer.py init.\n"
        f"issuers:\n  - iss: {ISSUER}\n    jwks_file: jwks.json\n",
        encoding="utf-8",
    )
    print(f"wrote {directory}/issuers.yaml, jwks.json and private-key.pem")


def token(directory: Path, audience: str) -> None:
    """Print a token for ``audience``, valid five minutes."""
    key = serialization.load_pem_private_key((directory / "private-key.pem").read_bytes(), password=None)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    print(jwt.encode(claims, key, algorithm="ES384", headers={"kid": KID}))  # type: ignore[arg-type]


def request(directory: Path) -> None:
    """Write a patient-view request prefetching the example FHIR bundle."""
    bundle = json.loads(BUNDLE.read_text(encoding="utf-8"))
    resources = [entry["resource"] for entry in bundle["entry"]]
    (patient,) = [r for r in resources if r["resourceType"] == "Patient"]

    def searchset(kind: str) -> dict[str, object]:
        found = [{"resource": r} for r in resources if r["resourceType"] == kind]
        return {"resourceType": "Bundle", "type": "searchset", "entry": found}

    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient["id"]},
        "prefetch": {
            "patient": patient,
            "conditions": searchset("Condition"),
            "medications": searchset("MedicationRequest"),
            "medicationStatements": searchset("MedicationStatement"),
            "observations": searchset("Observation"),
            "allergies": searchset("AllergyIntolerance"),
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "patient-view.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    print(f"wrote {path}")


def main() -> None:
    """The command line."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("command", choices=["init", "token", "request"])
    parser.add_argument("audience", nargs="?", help="token: the endpoint URL the token is for")
    parser.add_argument("--dir", type=Path, default=ROOT / "out" / "serve", help="default: out/serve")
    args = parser.parse_args()
    if args.command == "init":
        init(args.dir)
    elif args.command == "token":
        if not args.audience:
            parser.error("token needs the endpoint URL, e.g. http://127.0.0.1:8080/cds-services/<id>")
        token(args.dir, args.audience)
    else:
        request(args.dir)


if __name__ == "__main__":
    main()
