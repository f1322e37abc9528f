# syntax=docker/dockerfile:1
# The Rasa server runtime (Python 3.10, rasa 3.6.21): concierge_rasa, the exported ONNX sentence encoder
# and the trained model models/concierge.tar.gz, built the way the Makefile builds them:
#   stage onnx  = the .venv target (torch 2.13.0 CPU wheel, constraints/actions.lock, --no-deps -e .)
#                 + `scripts/export_onnx.py` (the $(ONNX) target);
#   stage rasa  = the .venv-rasa target (constraints/rasa.lock) + `rasa train` (the $(MODEL) target).
# tests/deploy/test_k8s.py checks these installs against the Makefile so they do not drift.
# Build from the repository root:  docker build -f deploy/docker/rasa.Dockerfile -t concierge-rasa .
# (No Docker daemon on the development machines: this file is checked for consistency, not built, there.)

# ---- the ONNX export needs torch, which only the Python 3.11 runtime has
FROM python:3.11-slim-bookworm AS onnx
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONPATH=/app HF_HUB_OFFLINE=1
WORKDIR /app
COPY constraints/actions.lock constraints/actions.lock
RUN python -m pip install -q --upgrade pip wheel \
 && python -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && python -m pip install -q -r constraints/actions.lock
COPY pyproject.toml README.md ./
COPY bot bot
COPY actions actions
COPY concierge_rasa concierge_rasa
COPY scripts/export_onnx.py scripts/export_onnx.py
RUN python -m pip install -q --no-deps --no-build-isolation -e . \
 && python scripts/export_onnx.py

# ---- Python 3.10 (the Makefile: scripts/find_python.sh 3.10)
FROM python:3.10-slim-bookworm AS rasa
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1 CONCIERGE_VAR_DIR=/app/var \
    RASA_TELEMETRY_ENABLED=false
WORKDIR /app
COPY constraints/rasa.lock constraints/rasa.lock
RUN python -m pip install -q --upgrade pip wheel \
 && python -m pip install -q -r constraints/rasa.lock
# only what the Rasa runtime reads (it never imports bot/)
COPY concierge_rasa concierge_rasa
COPY nlu_data nlu_data
COPY data/sentiment data/sentiment
COPY domain.yml config.yml credentials.yml endpoints.yml ./
COPY deploy/production/endpoints.yml deploy/production/endpoints.yml
COPY deploy/docker/require-env.sh deploy/docker/require-env.sh
COPY scripts/rasa_run.py scripts/rasa_run.py
COPY --from=onnx /app/var/models/minilm-onnx var/models/minilm-onnx
RUN rasa train --data nlu_data --domain domain.yml --config config.yml --out models --fixed-model-name concierge \
 && rm -rf .rasa \
 && useradd --uid 10001 --home-dir /app --no-create-home concierge \
 && chown concierge var
USER 10001
# a writable home for the libraries' caches and settings (the code itself stays root-owned)
ENV HOME=/app/var
EXPOSE 5005
ENTRYPOINT ["/app/deploy/docker/require-env.sh"]
CMD ["python", "scripts/rasa_run.py", "run", "-m", "models/concierge.tar.gz", "-i", "0.0.0.0", "--port", "5005", \
     "--endpoints", "deploy/production/endpoints.yml", "--credentials", "credentials.yml"]
