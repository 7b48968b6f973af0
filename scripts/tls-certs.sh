#!/bin/sh
# tls-certs.sh DIR - test certificates for the TLS tests, made with the openssl CLI at test
# time (no private key is committed). Called by the C unit tests (milestones/04-http/tests/
# tlsfix.c) and usable from the e2e tests: `scripts/tls-certs.sh DIR`, then read the files.
# Idempotent per DIR (it rewrites everything). Writes into DIR:
#   ca.pem ca.key             test CA (EC P-256), CN=gw test CA
#   ca2.pem ca2.key           a second, unrelated CA (for "foreign" certificates)
#   rsa.pem rsa.key           RSA 2048 leaf, SAN localhost, a.example.com, 127.0.0.1; key PKCS#8
#   rsa-trad.key              the same key in the traditional form (BEGIN RSA PRIVATE KEY)
#   rsa-chain.pem             rsa.pem then ca.pem (a chain, leaf first)
#   ec.pem ec.key             EC P-256 leaf, SAN b.example.com, *.wild.example.com; key PKCS#8
#   ec-trad.key               the same key as BEGIN EC PRIVATE KEY
#   expired.pem expired.key   EC leaf for expired.example.com, valid 2020-01-01 .. 2020-01-02
#   client.pem client.key     client certificate CN=client-one (EC), signed by ca
#   foreign.pem foreign.key   client certificate CN=intruder, signed by ca2
# Validity of the others: 2020-01-01 .. 2049-12-31 (fixed dates, so tests can pick a time).
set -eu
d=${1:?usage: tls-certs.sh DIR}
mkdir -p "$d"
cd "$d"
q() { "$@" >/dev/null 2>&1 || { echo "tls-certs.sh: failed: $*" >&2; "$@"; exit 1; }; }

eckey() { q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# A CA: $1 name (files $1.pem, $1.key), $2 CN; self-signed with `openssl ca -selfsign`
# for the same fixed dates as the leaves (req -x509 would start it today).
mkca() {
    eckey "$1.key"
    mkleaf "$1" "$1" "/CN=$2" "basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash" $FROM $TO
}

# A leaf signed by CA $1 with `openssl ca` (explicit dates): $2 name, $3 subject, $4 ext
# lines, $5 start, $6 end (YYYYMMDDHHMMSSZ).
mkleaf() {
    ca=$1 name=$2
    q openssl req -new -key "$name.key" -out "$name.csr" -subj "$3"
    rm -rf "db-$name" && mkdir "db-$name" && : >"db-$name/index.txt"
    cat >"db-$name/ca.cnf" <<CNF
[ca]
default_ca = c
[c]
database = db-$name/index.txt
new_certs_dir = db-$name
serial = db-$name/serial
default_md = sha256
policy = p
copy_extensions = none
unique_subject = no
[p]
commonName = supplied
[x]
$4
CNF
    openssl rand -hex 8 >"db-$name/serial"
    if [ "$ca" = "$name" ]; then signer="-selfsign"; else signer="-cert $ca.pem"; fi
    # shellcheck disable=SC2086
    q openssl ca -batch -notext -config "db-$name/ca.cnf" $signer -keyfile "$ca.key" \
        -in "$name.csr" -out "$name.pem" -extensions x -startdate "$5" -enddate "$6"
    rm -rf "db-$name" "$name.csr"
}

SRV="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth"
CLI="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
FROM=20200101000000Z
TO=20491231235959Z

mkca ca "gw test CA"
mkca ca2 "gw other CA"

q openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key
q openssl rsa -in rsa.key -traditional -out rsa-trad.key
mkleaf ca rsa "/CN=localhost" "$SRV
subjectAltName=DNS:localhost,DNS:a.example.com,IP:127.0.0.1" $FROM $TO
cat rsa.pem ca.pem >rsa-chain.pem

eckey ec.key
q openssl ec -in ec.key -out ec-trad.key
mkleaf ca ec "/CN=b.example.com" "$SRV
subjectAltName=DNS:b.example.com,DNS:*.wild.example.com" $FROM $TO

eckey expired.key
mkleaf ca expired "/CN=expired.example.com" "$SRV
subjectAltName=DNS:expired.example.com" 20200101000000Z 20200102000000Z

eckey client.key
mkleaf ca client "/CN=client-one" "$CLI" $FROM $TO
eckey foreign.key
mkleaf ca2 foreign "/CN=intruder" "$CLI" $FROM $TO

chmod 600 ./*.key
