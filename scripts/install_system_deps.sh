#!/usr/bin/env bash
# Debian packages the tests need: a real MQTT broker (Mosquitto, its clients for the benchmark),
# openssl for the TLS test, and a real browser (Chromium) for the map, with a Chinese font (WenQuanYi
# Micro Hei, 1.6 MB) so the map's Chinese screenshots show characters rather than empty boxes.
set -euo pipefail
need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "system dependencies ready: mosquitto, mosquitto-clients, openssl, chromium, fonts-wqy-microhei"
