#!/bin/bash
# Installs jitsi-videobridge2 and jitsi-autoscaler-sidecar from Jitsi's repository. Their configuration is already in
# place (written by cloud-init): the packages' postinst keeps an existing jvb.conf and sidecar key, and skips the
# legacy XMPP settings because sip-communicator.properties names them.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# The domain the package's postinst asks for (its defaults file); the bridge logs in with jvb.conf's settings.
echo "jitsi-videobridge2 jitsi-videobridge/jvb-hostname string {{xmppDomain}}" | debconf-set-selections
apt-get install -y jitsi-videobridge2 jitsi-autoscaler-sidecar
systemctl enable jitsi-videobridge2.service
systemctl restart jitsi-videobridge2.service
