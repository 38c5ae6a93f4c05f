#!/bin/bash
# Adds Jitsi's own Debian repository (stable), as Jitsi's quick-install guide does, and reads its package lists.
set -euo pipefail
curl -fsSL https://download.jitsi.org/jitsi-key.gpg.key | gpg --dearmor --yes -o /usr/share/keyrings/jitsi-keyring.gpg
echo 'deb [signed-by=/usr/share/keyrings/jitsi-keyring.gpg] https://download.jitsi.org stable/' >/etc/apt/sources.list.d/jitsi-stable.list
apt-get update
