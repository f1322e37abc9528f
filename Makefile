# Concierge — one entry point for set-up, running and testing.
#   make run    fresh machine -> environments, database, models, Rasa model, both servers (Ctrl-C stops both)
#   make test   the whole test suite (what CI runs)
SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

ROOT   := $(CURDIR)
VENV   := .venv
RVENV  := .venv-rasa
PY     := $(VENV)/bin/python
RPY    := $(RVENV)/bin/python
# The Rasa runtime sees the repo root only to import the small `concierge_rasa` package.
RASA   := PYTHONPATH=$(ROOT) TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1 $(RVENV)/bin/rasa
MODEL  := models/concierge.tar.gz
ONNX   := var/models/minilm-onnx/concierge_onnx.json
DATA   ?= ../shared/data
RASA_PORT   ?= 5005
ACTION_PORT ?= 5055
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export ACTION_ENDPOINT_URL ?= http://127.0.0.1:$(ACTION_PORT)/webhook
export CONCIERGE_ACTION_TOKEN ?= $(shell scripts/action_token.sh)
# Rasa's SQLite tracker store and SQL event broker (endpoints.yml), read by the CRM ingestor
export CONCIERGE_TRACKER_DB ?= $(ROOT)/var/tracker.db
export CONCIERGE_EVENTS_DB ?= $(ROOT)/var/events.db

RASA_SOURCES := domain.yml config.yml $(shell find nlu_data -name '*.yml' 2>/dev/null) \
                $(shell find concierge_rasa -name '*.py' 2>/dev/null) \
                $(wildcard data/sentiment/*.csv data/sentiment/zh/*.csv data/sentiment/eval/*.csv)

.PHONY: help setup run test train train-models models db migrate seed shell lint validate \
        web browser bench-widget bench-dashboard bench-handoff test-unit test-rasa test-stories variants bench-latency bench-redaction bench-crm-ingest bench-tracker-store bench-sentiment bench-sentiment-nlu bench-recommender bench-nlu bench-heldout bench-conversations bench-zh bench-knn bench-ceiling bench-scale \
        analytics analytics-if-missing bench-churn bench-clv clean

help:
	@echo "  make run                  set up everything that is missing and start every service (Ctrl-C stops them)"
	@echo "  make test                 the whole test suite, as CI runs it (.ci/run): test-rasa, test-stories, test-unit"
	@echo "set-up steps (make run and make test do them):"
	@echo "  make setup                both Python environments and the npm packages (web)"
	@echo "  make web                  the chat widget, htmx and Chart.js (npm ci)"
	@echo "  make browser              Debian's chromium for the browser tests (apt)"
	@echo "  make migrate              apply the database migrations (Alembic)"
	@echo "  make db                   migrate, then seed the demo shop if the database is empty"
	@echo "  make seed                 re-seed the demo shop"
	@echo "  make models               train the recommender if missing"
	@echo "  make train                train the Rasa model (only when domain, config, nlu_data or concierge_rasa changed)"
	@echo "  make train-models         retrain the action server's models (recommender, baseline sentiment)"
	@echo "  make analytics            recompute segments, churn risk, value, lifecycle and feedback topics"
	@echo "  make analytics-if-missing the same, only when nothing was computed yet"
	@echo "  make variants             regenerate nlu_data/nlu/variants.yml from data/nlu_templates.yml"
	@echo "working on it:"
	@echo "  make shell                chat with the assistant in the terminal"
	@echo "  make lint                 ruff"
	@echo "  make validate             rasa data validate (domain, NLU data, stories)"
	@echo "  make test-rasa            the Rasa runtime's unit tests (tests/concierge_rasa, Python 3.10)"
	@echo "  make test-stories         rasa test on the test stories"
	@echo "  make test-unit            every other test (real servers in tests/e2e, chromium in tests/browser)"
	@echo "  make clean                remove the Rasa model and test results"
	@echo "benchmarks (figures beside a baseline of the same run; docs/benchmarks.md):"
	@echo "  make bench-nlu            intents on BANKING77, CLINC150, Bitext (a development set) vs stock rasa init"
	@echo "  make bench-heldout        intents on hand-written customer messages never trained on (bench/heldout)"
	@echo "  make bench-conversations  customer conversations per repair pattern (tests/e2e/conversations), before/now"
	@echo "  make bench-zh             Chinese: SMP2017 intents, ChnSentiCorp and XS sentiment, parse latency (public sets)"
	@echo "  make bench-knn            choose the kNN vote's settings on validation splits"
	@echo "  make bench-ceiling        frozen encoder vs tuned top layers, on validation splits"
	@echo "  make bench-scale          production topology on namespaced hosts behind HAProxy: load, faults (root)"
	@echo "  make bench-sentiment      the old sentiment model on DATA"
	@echo "  make bench-sentiment-nlu  sentiment in the Rasa NLU vs the old model: accuracy, calibration, latency"
	@echo "  make bench-recommender    the recommender vs its baselines"
	@echo "  make bench-latency        reply latency and throughput vs a stock rasa init bot"
	@echo "  make bench-socketio       socket.io reply latency"
	@echo "  make bench-widget         the chat widget in chromium vs REST"
	@echo "  make bench-handoff        agent reply to customer, customer message to the agent's screen"
	@echo "  make bench-dashboard      supervisor dashboard request times, with and without its indexes"
	@echo "  make bench-redaction      CRM redaction recall and precision on the labelled set"
	@echo "  make bench-crm-ingest     CRM ingestor CPU per event, before/after its spaCy and lookup savings"
	@echo "  make bench-tracker-store  production PostgreSQL tracker store CPU per turn vs Rasa's"
	@echo "  make bench-churn          churn model on IBM Telco"
	@echo "  make bench-clv            customer value on CDNOW"
	@echo "  make help                 this list"

# ---------------------------------------------------------------- environments
$(VENV)/.installed: pyproject.toml constraints/actions.lock
	@echo "==> action-server runtime (Python 3.11) in $(VENV)"
	@[ -x $(PY) ] || "$$(scripts/find_python.sh 3.11)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r constraints/actions.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

$(RVENV)/.installed: constraints/rasa.lock
	@echo "==> Rasa server runtime (Python 3.10) in $(RVENV)"
	@[ -x $(RPY) ] || "$$(scripts/find_python.sh 3.10)" -m venv $(RVENV)
	$(RPY) -m pip install -q --upgrade pip wheel
	$(RPY) -m pip install -q -r constraints/rasa.lock
	@touch $@

setup: $(VENV)/.installed $(RVENV)/.installed web

# ---------------------------------------------------------------- web widget (rasa-webchat from npm, served locally)
WEB_STAMP := node_modules/.installed
$(WEB_STAMP): package.json package-lock.json
	@echo "==> chat widget (npm ci)"
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 18+ with npm (Debian: apt-get install -y nodejs npm)" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

web: $(WEB_STAMP)

# Debian's chromium for the browser tests (Playwright cannot download its own browser here)
# chromium, and a font with Chinese characters so the 中文 widget is readable in screenshots
browser:
	@{ [ -x /usr/bin/chromium ] && fc-list :lang=zh | grep -q .; } || { echo "==> installing chromium and a Chinese font (apt)"; \
	  $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get update && \
	  $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get install -y chromium fonts-wqy-microhei; }
	@[ -x /usr/bin/chromium ] || { echo "chromium is missing: apt-get install -y chromium" >&2; exit 1; }

# ---------------------------------------------------------------- database
migrate: $(VENV)/.installed
	$(PY) -m bot.db.migrate

db: migrate
	$(PY) -m bot.seed --if-empty

seed: migrate
	$(PY) -m bot.seed

# ---------------------------------------------------------------- models
# The sentence encoder for the Rasa runtime, exported once from the packaged all-MiniLM-L6-v2.
$(ONNX): scripts/export_onnx.py | $(VENV)/.installed
	$(PY) scripts/export_onnx.py

models: $(VENV)/.installed $(ONNX) db
	$(PY) -m bot.ml.train --if-missing --only recommender

train-models: $(VENV)/.installed $(ONNX) db
	$(PY) -m bot.ml.train

$(MODEL): $(RASA_SOURCES) $(ONNX) | $(RVENV)/.installed
	$(RASA) train --data nlu_data --domain domain.yml --config config.yml --out models --fixed-model-name concierge

train: $(MODEL)

# ---------------------------------------------------------------- run
run: setup db models analytics-if-missing $(MODEL)
	@RASA_PORT=$(RASA_PORT) ACTION_PORT=$(ACTION_PORT) scripts/run.sh

shell: setup db models $(MODEL)
	@RASA_PORT=$(RASA_PORT) ACTION_PORT=$(ACTION_PORT) scripts/run.sh --shell

# ---------------------------------------------------------------- checks
lint: $(VENV)/.installed
	$(PY) -m ruff check .

validate: $(RVENV)/.installed
	$(RASA) data validate --data nlu_data --domain domain.yml --config config.yml --fail-on-warnings

test-rasa: $(RVENV)/.installed $(ONNX)
	PYTHONPATH=$(ROOT) $(RPY) -m pytest -q -rs tests/concierge_rasa

# End-to-end: the user text of every story goes through the NLU, then the dialogue policies.
test-stories: $(MODEL)
	rm -rf var/test-results && mkdir -p var/test-results
	CONCIERGE_TRACKER_DB=$(ROOT)/var/test-results/tracker.db CONCIERGE_EVENTS_DB=$(ROOT)/var/test-results/events.db \
	$(RASA) test core --stories tests/stories --model $(MODEL) --endpoints endpoints.yml \
	    --out var/test-results --e2e --no-plot
	@grep -q "None of the test stories failed" var/test-results/failed_test_stories.yml || \
	  { cat var/test-results/failed_test_stories.yml; echo "FAILED: some test stories failed (above)"; exit 1; }
	@echo "all test stories passed"

test-unit: $(VENV)/.installed models
	$(PY) -m pytest -q -rs --durations=30 --durations-min=5 --ignore=tests/concierge_rasa

test: setup browser lint validate models $(MODEL)
	@$(MAKE) --no-print-directory test-rasa test-stories test-unit

# ---------------------------------------------------------------- benchmarks (not tests)
bench-widget: setup browser db models $(MODEL)
	$(PY) bench/widget_latency.py

# socket.io (python-socketio client) beside REST on one stack: p50/p95, var/bench/socketio_latency.png
bench-socketio: setup db models $(MODEL)
	$(PY) bench/socketio_latency.py

# agent reply -> widget and customer message -> agent screen, p50/p95 beside baselines: var/bench/handoff_latency.png
bench-handoff: setup web db models $(MODEL)
	$(PY) bench/handoff_latency.py

bench-latency: setup db models $(MODEL)
	$(PY) -m pip install -q py-spy || echo "py-spy not installed: no stage breakdown"
	$(PY) bench/latency.py

# supervisor dashboard requests on a year of history (>= 100,000 turns) with/without the 0006 indexes
bench-dashboard: $(VENV)/.installed web
	$(PY) bench/dashboard.py

# recall/precision of the CRM's redaction per kind of personal data (data/redaction/labelled.jsonl)
bench-redaction: $(VENV)/.installed db
	$(PY) bench/redaction.py

# CRM ingestor CPU per event, spaCy and lookups as before vs now (py-spy breakdown when installed)
bench-crm-ingest: $(VENV)/.installed
	$(PY) bench/crm_ingest.py

# production tracker store on the local PostgreSQL + RabbitMQ: Rasa's SQLTrackerStore vs concierge_rasa.stores
bench-tracker-store: $(RVENV)/.installed
	PYTHONPATH=$(ROOT) $(RPY) bench/tracker_store.py

bench-sentiment: $(VENV)/.installed
	$(PY) bench/sentiment.py --data $(DATA)

# sentiment in the Rasa NLU (head on the featurizer's encoder pass) vs the old model and its
# ONNX export: accuracy, macro-F1, ECE before/after calibration, added parse latency
bench-sentiment-nlu: $(VENV)/.installed $(RVENV)/.installed $(ONNX) models
	PYTHONPATH=$(ROOT) TF_CPP_MIN_LOG_LEVEL=2 $(RPY) bench/sentiment_nlu.py --data $(DATA)

bench-recommender: $(VENV)/.installed
	$(PY) bench/recommender.py --data $(DATA)

bench-nlu: $(RVENV)/.installed models $(MODEL)
	PYTHONPATH=$(ROOT) $(RPY) bench/nlu.py --data $(DATA)

bench-heldout: $(RVENV)/.installed models $(MODEL)
	PYTHONPATH=$(ROOT) $(RPY) bench/nlu_heldout.py

bench-conversations: setup db models $(MODEL)
	$(PY) bench/conversations.py --baseline 17b30e6

bench-zh: $(RVENV)/.installed
	PYTHONPATH=$(ROOT) $(RPY) bench/zh.py --data $(DATA)

# chooses the intent classifier's kNN settings on validation splits only (see the script)
bench-knn: $(VENV)/.installed
	$(PY) bench/knn_tuning.py --data $(DATA)

# does a seed ensemble or fine-tuning MiniLM's top layer beat the frozen encoder? (validation only)
bench-ceiling: $(VENV)/.installed
	$(PY) bench/ceiling_probe.py --data $(DATA) --bucketed

# the production topology on network-namespace hosts (scripts/hosts.sh, root): 1 and 2 app hosts
# under Locust, cross-replica agent reply, faults under load, tracker store vs CRM (bench/scale.py)
LOCUST_VENV := var/tools/locust
$(LOCUST_VENV)/.installed:
	python3.11 -m venv $(LOCUST_VENV)
	$(LOCUST_VENV)/bin/pip install -q "locust==2.47.0" "python-socketio[client]==5.18.1" psycopg2-binary
	touch $@

bench-scale: setup db models $(MODEL) $(LOCUST_VENV)/.installed
	$(PY) bench/scale.py

# ---------------------------------------------------------------- CRM analytics (segments, churn, value, lifecycle, topics)
analytics: $(VENV)/.installed db
	$(PY) -m bot.analytics

analytics-if-missing: $(VENV)/.installed db
	$(PY) -m bot.analytics --if-missing

bench-churn: $(VENV)/.installed
	$(PY) bench/churn.py --data $(DATA)

bench-clv: $(VENV)/.installed
	$(PY) bench/clv.py

# regenerates nlu_data/nlu/variants.yml after editing data/nlu_templates.yml
variants: $(VENV)/.installed
	$(PY) scripts/gen_nlu_variants.py

clean:
	rm -rf models var/test-results .pytest_cache
