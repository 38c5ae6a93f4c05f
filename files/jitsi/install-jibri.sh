#!/bin/bash
# Installs jibri and jitsi-autoscaler-sidecar from Jitsi's repository, with what jibri's README asks for: the ALSA
# loopback module, Google Chrome stable from Google's repository and the chromedriver of the same Chrome release.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Cloud kernels ship snd-aloop in their extra modules.
apt-get install -y "linux-modules-extra-$(uname -r)" unzip
echo snd-aloop >/etc/modules-load.d/jibri.conf
modprobe snd-aloop
curl -fsSL https://dl.google.com/linux/linux_signing_key.pub | gpg --dearmor --yes -o /usr/share/keyrings/google-chrome.gpg
echo 'deb [arch=amd64 signed-by=/usr/share/keyrings/google-chrome.gpg] https://dl.google.com/linux/chrome/deb/ stable main' >/etc/apt/sources.list.d/google-chrome.list
apt-get update
apt-get install -y google-chrome-stable
# Chrome for Testing publishes the chromedriver of every Chrome release.
chrome_version=$(google-chrome --version | grep -oE '[0-9]+(\.[0-9]+){3}')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL "https://storage.googleapis.com/chrome-for-testing-public/$chrome_version/linux64/chromedriver-linux64.zip" -o "$work/chromedriver.zip"
unzip -q "$work/chromedriver.zip" -d "$work"
install -m 0755 "$work/chromedriver-linux64/chromedriver" /usr/local/bin/chromedriver
apt-get install -y jibri jitsi-autoscaler-sidecar
systemctl enable jibri.service
systemctl restart jibri.service
