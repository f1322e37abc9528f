# syntax=docker/dockerfile:1
# The Python 3.11 runtime: action server, web app (shop, widget, agent console), CRM ingestor and the
# Alembic migration, one image, the command picks the process (deploy/k8s). Installs what the Makefile's
# .venv target installs, in the same order: torch 2.13.0 (CPU wheel), constraints/actions.lock,
# then the project itself with --no-deps -e . (tests/deploy/test_k8s.py checks they do not drift).
# Build from the repository root:  docker build -f deploy/docker/app.Dockerfile -t concierge-app .
# (No Docker daemon on the development machines: this file is checked for consistency, not built, there.)

# ---- the chat widget, htmx and Chart.js (the Makefile's `web` target: npm ci)
FROM node:20-bookworm-slim AS widget
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# ---- Python 3.11 (the Makefile: scripts/find_python.sh 3.11)
FROM python:3.11-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app SQLALCHEMY_SILENCE_UBER_WARNING=1 CONCIERGE_VAR_DIR=/app/var HF_HUB_OFFLINE=1
WORKDIR /app
COPY constraints/actions.lock constraints/actions.lock
RUN python -m pip install -q --upgrade pip wheel \
 && python -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && python -m pip install -q -r constraints/actions.lock
COPY . .
RUN python -m pip install -q --no-deps --no-build-isolation -e . \
 && useradd --uid 10001 --home-dir /app --no-create-home concierge \
 && mkdir -p var && chown concierge var
COPY --from=widget /app/node_modules node_modules
USER 10001
# a writable home for the libraries' caches and settings (the code itself stays root-owned)
ENV HOME=/app/var
ENTRYPOINT ["/app/deploy/docker/require-env.sh"]
CMD ["python", "-m", "bot.action_server", "--host", "0.0.0.0", "--port", "5055"]
