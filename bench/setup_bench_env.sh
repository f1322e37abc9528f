#!/usr/bin/env bash
# Creates .venv-bench: a Python 3.10 environment for benchmark-only baselines that do not
# build on Python 3.11 / numpy 2 (scikit-surprise). Idempotent: does nothing when ready.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv-bench"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import surprise" 2>/dev/null; then
  exit 0
fi
PY="${BENCH_PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in "$(pyenv root 2>/dev/null)"/versions/3.10.*/bin/python python3.10; do
    if [ -x "$cand" ] || command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup_bench_env: no Python 3.10 found (set BENCH_PYTHON)" >&2; exit 1; }
echo "setup_bench_env: creating $VENV with $PY" >&2
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "numpy<2" "scikit-surprise==1.1.4"
echo "setup_bench_env: ready" >&2
