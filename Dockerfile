# syntax=docker/dockerfile:1
# The agentmesh image: one image, every process (`serve <component>`,
# `serve gateway`, `agent <name>`, `db migrate`). Build: docker build -t agentmesh .
#
# The runtime stage is the layout the tests start the rendered manifests'
# commands in (test/k8s/image.ts reads its WORKDIR, COPY lines, ENV, USER and
# ENTRYPOINT and lays the same files out from the checkout).
ARG NODE_IMAGE=node:22.21.1-bookworm-slim

# Compile to dist/ (TypeScript, and the dashboard's browser script).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY gen ./gen
COPY lib ./lib
COPY services ./services
COPY gateway ./gateway
COPY agents ./agents
COPY sdk ./sdk
COPY cli ./cli
RUN npm run build

# Production dependencies only, without install scripts (nothing is compiled at run time).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    AGENTMESH_HOME=/var/lib/agentmesh \
    AGENTMESH_LOG_DIR=/var/log/agentmesh \
    AGENTMESH_HOST=0.0.0.0
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./package.json
COPY bin/agentmesh.js ./bin/agentmesh.js
COPY bundles ./bundles
COPY policies ./policies
COPY bundles ./bundles
COPY services/planner/playbooks ./services/planner/playbooks
COPY gateway/web/index.html gateway/web/style.css ./gateway/web/
# The only writable places (emptyDir volumes under a read-only root filesystem).
RUN mkdir -p /var/lib/agentmesh /var/log/agentmesh \
 && chown 10001:10001 /var/lib/agentmesh /var/log/agentmesh
USER 10001:10001
VOLUME ["/var/lib/agentmesh", "/var/log/agentmesh"]
EXPOSE 8080 7101 7102 7103 7104 9464
ENTRYPOINT ["node", "bin/agentmesh.js"]
CMD ["help"]
