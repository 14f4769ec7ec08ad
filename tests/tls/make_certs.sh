#!/usr/bin/env bash
# Makes the certificates the TLS tests use, with the openssl command line as docs/security.md
# shows a rig's owner: a CA, the server's certificate (localhost, 127.0.0.1), client
# certificates (flasher-1 and logger-1 with clientAuth), and the bad ones: expired, without
# clientAuth (wrong key usage), and one from another CA.
#   tests/tls/make_certs.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# sign NAME CN CA EXTENSIONS [DAYS]
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  printf '%b\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
    -days "${5:-30}" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca() {
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 -out "$1.pem" 2>/dev/null
}

ca ca "canserver test CA"
ca other-ca "some other CA"
# Made first, valid for 0 days: expired a second later (checked below).
sign expired expired-1 ca "extendedKeyUsage=clientAuth" 0
sign server localhost ca "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
sign flasher flasher-1 ca "subjectAltName=DNS:flasher-1.rig\nextendedKeyUsage=clientAuth"
sign logger logger-1 ca "extendedKeyUsage=clientAuth"
sign serveronly flasher-2 ca "extendedKeyUsage=serverAuth"
sign stranger flasher-1 other-ca "extendedKeyUsage=clientAuth"
# A second server certificate for the reload test (same CA, another serial).
sign server2 localhost ca "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
until ! openssl verify -CAfile ca.pem expired.pem >/dev/null 2>&1; do sleep 0.2; done
