# The confscale scaler, built on the control node from the source archive of the deployed commit.
FROM node:20-bookworm-slim
ARG PULUMI_VERSION=3.248.0
ENV PULUMI_HOME=/opt/pulumi-home
# The official installer puts the CLI in <install root>/bin (without --install-root: $HOME/.pulumi/bin).
ENV PULUMI_ROOT=/opt/pulumi
ENV PATH=/opt/pulumi/bin:$PATH
# A failed download must fail the build, not pipe an empty script into sh.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl git \
 && rm -rf /var/lib/apt/lists/* \
 && curl -fsSL https://get.pulumi.com | sh -s -- --version "${PULUMI_VERSION}" --install-root "${PULUMI_ROOT}" --no-edit-path \
 && pulumi version
WORKDIR /opt/confscale
COPY package.json package-lock.json ./
RUN npm ci --omit=dev
COPY . .
# Provider plugins the fleet stack needs, installed at build time so the scaler never downloads while acting.
RUN pulumi plugin install resource digitalocean "$(node -p "require('@pulumi/digitalocean/package.json').version")" \
 && pulumi plugin install resource oci "$(node -p "require('@pulumi/oci/package.json').version")" \
 && ln -s /opt/confscale/scaler/cli.ts /usr/local/bin/confscale \
 && mkdir -p /var/lib/confscale "${PULUMI_HOME}" \
 && chown -R node:node "${PULUMI_HOME}" /var/lib/confscale
USER node
ENV NODE_ENV=production
EXPOSE 8080 8081
# node itself is PID 1, so `docker compose` stop or a redeploy's SIGTERM reaches the scaler's graceful shutdown.
CMD ["node", "--import", "tsx", "scaler/main.ts"]
