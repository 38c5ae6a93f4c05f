#!/bin/sh
# Let's Encrypt deploy hook: hand the renewed certificate of {{hostname}} to node-exporter.
set -eu
live=/etc/letsencrypt/live/{{hostname}}
install -m 0644 -o prometheus -g prometheus "$live/fullchain.pem" /etc/prometheus/node-exporter-tls/fullchain.pem
install -m 0600 -o prometheus -g prometheus "$live/privkey.pem" /etc/prometheus/node-exporter-tls/privkey.pem
systemctl reload-or-restart prometheus-node-exporter
