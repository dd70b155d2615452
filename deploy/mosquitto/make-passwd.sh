#!/bin/sh
# Build a Mosquitto password file from a devices JSON list ([{"device_id", "secret", ...}])
# plus the ingester account.  Usage: make-passwd.sh devices.json passwd INGESTER_PASSWORD
# Secrets are hashed by mosquitto_passwd (PBKDF2-SHA512); the output is readable only by you.
set -eu
if [ "$#" -ne 3 ]; then
    echo "usage: $0 devices.json passwd-file ingester-password" >&2
    exit 2
fi
devices="$1"; out="$2"; ingester_pw="$3"
command -v mosquitto_passwd >/dev/null || { echo "mosquitto_passwd not found: apt-get install mosquitto" >&2; exit 2; }
umask 077
python3 - "$devices" "$ingester_pw" > "$out" <<'PY'
import json, sys
devices = json.load(open(sys.argv[1]))
print(f"ingester:{sys.argv[2]}")
for d in devices:
    if ":" in d["device_id"] or not d.get("secret"):
        sys.exit(f"device {d['device_id']!r}: needs a secret and no ':' in its id")
    print(f"{d['device_id']}:{d['secret']}")
PY
mosquitto_passwd -U "$out"
echo "wrote $out ($(wc -l < "$out") accounts)"
