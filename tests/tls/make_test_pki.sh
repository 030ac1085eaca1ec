#!/usr/bin/env bash
# Test PKI for the TLS/DTLS tests (slmsim's modem-side TLS and slmd's). Usage: make_test_pki.sh DIR
# Writes into DIR (EC P-256 keys, 10-year validity, SHA-256):
#   ca.pem ca.key                 test root CA
#   server.pem server.key         signed by ca; SAN DNS:tls.test, DNS:localhost, IP:127.0.0.1
#   client.pem client.key         signed by ca; a client certificate (CN slmsim-client)
#   other-ca.pem other-ca.key     an unrelated CA (for "wrong CA" tests)
#   wrong-host.pem wrong-host.key signed by ca; SAN DNS:other.test only (hostname mismatch tests)
#   psk.hex psk-identity.txt      16 random bytes as hex (no newline), and the identity (no newline)
# Idempotent: when every file exists and is newer than this script nothing is done; otherwise the whole set
# is generated again in a scratch directory and moved into place. Exits non-zero on any failure.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
files=(ca.pem ca.key server.pem server.key client.pem client.key other-ca.pem other-ca.key wrong-host.pem
  wrong-host.key psk.hex psk-identity.txt)

mkdir -p "$dir"
up_to_date=1
for f in "${files[@]}"; do
  if [ ! -s "$dir/$f" ] || [ "$0" -nt "$dir/$f" ]; then up_to_date=0; fi
done
[ "$up_to_date" = 1 ] && exit 0

command -v openssl >/dev/null || { echo "make_test_pki: openssl not found" >&2; exit 1; }
work=$(mktemp -d "$dir/.pki.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem"
}
leaf() {  # name subject extensions-file
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
    -extfile "$3" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr"
}

ca ca "/CN=slmsim test CA"
ca other-ca "/CN=slmsim unrelated CA"
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:tls.test,DNS:localhost,IP:127.0.0.1\n' >server.ext
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:other.test\n' >wrong.ext
leaf server "/CN=tls.test" server.ext
leaf client "/CN=slmsim-client" client.ext
leaf wrong-host "/CN=other.test" wrong.ext
openssl rand -hex 16 | tr -d '\n' >psk.hex
printf 'slmsim-psk-identity' >psk-identity.txt

openssl verify -CAfile ca.pem server.pem client.pem wrong-host.pem >/dev/null
for f in "${files[@]}"; do
  [ -s "$f" ] || { echo "make_test_pki: $f missing" >&2; exit 1; }
done
chmod 600 ./*.key
for f in "${files[@]}"; do mv -f "$f" "$dir/$f"; done
