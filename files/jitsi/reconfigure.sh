#!/bin/bash
# The sidecar's reconfigure script (RECONFIGURE_SCRIPT in /etc/confscale/jitsi-sidecar.env, run through sudo by the
# rule in /etc/sudoers.d/confscale-jitsi-reconfigure): a group's reconfigure request (POST /api/v1/groups/<group>/reconfigure)
# makes this worker write its configuration again as the fleet rendered it, from the user data cloud-init keeps, and
# restart {{componentService}} to read it. A configuration the fleet changes comes as new user data, which replaces
# the machine; this puts back what a hand edit or a package upgrade changed. The restart ends what the component
# serves at that moment (a bridge's conferences move to another bridge, a recording stops); the sidecar keeps its own
# settings until it restarts, and reports the reconfigure done when this script exits 0.
set -euo pipefail
cloud-init single --name write_files --frequency always
cloud-init single --name write_files_deferred --frequency always
systemctl daemon-reload
systemctl restart {{componentService}}.service
