# Local stack without Docker; see deploy/README-stack.md.
SHELL := /bin/bash
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PY := $(ROOT)/.venv/bin/python
# Prefer the venv's tools (pinned in pyproject's dev extra) over whatever is on PATH.
tool = $(if $(wildcard $(ROOT)/.venv/bin/$(1)),$(ROOT)/.venv/bin/$(1),$(1))
has_module = $(PY) -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("$(1)") is None)' 2>/dev/null

# The tests, the benchmark and the chaos run find the local stack through these (ports overridable).
# CONCORD_KAFKA_BROKERS=3: every node of the cluster (node i on CONCORD_KAFKA_PORT + 2(i-1)).
KAFKA_PORT_1 := $(or $(CONCORD_KAFKA_PORT),9092)
ifeq ($(CONCORD_KAFKA_BROKERS),3)
export CONCORD_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(KAFKA_PORT_1),127.0.0.1:$(shell echo $$(($(KAFKA_PORT_1) + 2))),127.0.0.1:$(shell echo $$(($(KAFKA_PORT_1) + 4)))
else
export CONCORD_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(KAFKA_PORT_1)
endif
export CONCORD_TEST_ADMIN_DSN ?= postgresql://concord_admin:local-dev-concord_admin@127.0.0.1:$(or $(CONCORD_PG_PORT),54329)/postgres

.PHONY: deps up down purge demo test bench chaos chaos-cluster lint logs status

deps:
	$(ROOT)/deploy/install.sh

up:
	$(ROOT)/deploy/up.sh

down:
	$(ROOT)/deploy/down.sh

purge:
	$(ROOT)/deploy/down.sh --purge

# SPEC §13.3: the demo shows a payout-account change held, then confirmed after a cooling-off of
# seconds (services started by this `make demo`; a stack already running keeps its own setting).
demo: export CONCORD_ACCOUNT_CHANGE_COOLING_OFF_HOURS ?= 0.002
demo: up
	cd $(ROOT) && $(PY) -m tools.cli.demo

# The tests start their own service processes: only PostgreSQL, Kafka and the topics here.
test: deps
	$(ROOT)/deploy/up.sh --no-services --no-install
	cd $(ROOT) && $(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks and the chaos run start their own service processes, like the tests.
# make bench BENCH_ARGS="--help": its options (durations, rates, arrival lag, --profile for py-spy).
bench: deps
	$(ROOT)/deploy/up.sh --no-services --no-install
	cd $(ROOT) && $(PY) -m bench $(BENCH_ARGS)

# make chaos CHAOS_ARGS="--brokers 3 --replicas 2" (with CONCORD_KAFKA_BROKERS=3), or make chaos-cluster.
chaos: deps
	$(ROOT)/deploy/up.sh --no-services --no-install
	cd $(ROOT) && $(PY) -m chaos $(CHAOS_ARGS)

# The cluster shape: three brokers (the local stack's, started here if need be, in place of a
# single broker that runs), two processes of every service; brokers SIGKILLed and paused besides
# the service faults.
chaos-cluster: deps
	CONCORD_KAFKA_BROKERS=3 CONCORD_KAFKA_SWITCH=1 $(ROOT)/deploy/up.sh --no-services --no-install
	cd $(ROOT) && CONCORD_KAFKA_BROKERS=3 $(PY) -m chaos --brokers 3 --replicas 2 $(CHAOS_ARGS)

lint:
	cd $(ROOT) && $(call tool,ruff) check . && $(call tool,ruff) format --check . && $(call tool,mypy) shared services tools testkit

logs:
	tail -n 20 -F $${CONCORD_STATE_DIR:-$(ROOT)/.cache}/logs/*.log

status:
	@$(ROOT)/deploy/postgres.sh status || true
	@$(ROOT)/deploy/kafka.sh status || true
	@$(ROOT)/deploy/zipkin.sh status || true
	@$(ROOT)/deploy/services.sh status || true
	@$(ROOT)/deploy/prometheus.sh status || true
	@$(ROOT)/deploy/console.sh status || true
