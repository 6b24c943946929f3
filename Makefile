# Hookline: the commands people and CI run. Each target says what it does in `make help`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# The development tools (dev-pod-runner) are a Cargo workspace of their own in dev/; cargo
# run there builds into the same target/ (dev/.cargo/config.toml).
DEV_CARGO = cd dev && $(CARGO)

.PHONY: help crds stack-up stack-down stack-status test lint fmt check build run kind-up kind-test kind-down kind-bench bench chaos observability-docs

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

stack-up: ## Install what is missing and start PostgreSQL, Kafka and a Kubernetes control plane on loopback
	@dev/stack.sh up

stack-down: ## Stop exactly the processes stack-up started
	@dev/stack.sh down

stack-status: ## Say which parts of the local stack are running
	@dev/stack.sh status

crds: ## Regenerate crds/webhook.yaml (and the chart's copy) from the operator's types
	$(CARGO) run -q -p hookline-operator -- crd > crds/webhook.yaml
	cp crds/webhook.yaml helm/hookline/crds/webhook.yaml

fmt: ## Format the Rust code: Hookline's workspace and dev/'s tools
	$(CARGO) fmt --all
	$(DEV_CARGO) fmt --all

lint: ## rustfmt check, clippy with warnings as errors, shellcheck on every script, no unused dependencies, the console's script parses, cargo-deny (licences, duplicates, sources), images run as non-root
	$(CARGO) fmt --all -- --check
	$(DEV_CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(DEV_CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@dev/shellcheck.sh
	@dev/unused-deps.sh
	@dev/check-console-assets.sh
	@dev/supply-chain.sh deny
	@dev/supply-chain.sh image-user

check: ## Type-check everything quickly
	$(CARGO) check --workspace --all-targets
	$(DEV_CARGO) check --workspace --all-targets

build: ## The release build of the binaries, exactly as the Dockerfile runs it, then their SBOMs in target/sbom/
	@dev/build-release.sh
	@dev/supply-chain.sh sbom

test: stack-up lint ## Start the local stack if needed, lint, then run every test against it
	$(CARGO) build --workspace --bins --locked
	$(DEV_CARGO) build --workspace --bins --locked
	$(DEV_CARGO) test --workspace --locked
	# handler/tests/slow_senders.rs holds ~1,000 sockets in one process: the hard limit.
	source .stack/env && ulimit -Sn "$$(ulimit -Hn)" && $(CARGO) test --workspace --locked
	@dev/chart-test.sh

run: ## The whole system on this machine, with a live view until Ctrl-C
	@dev/run.sh

kind-up: ## The whole system on a kind cluster: Docker and kind if they answer, else all built here (dev/kind.sh)
	@dev/kind.sh up

kind-test: ## End-to-end test on the kind cluster of make kind-up (traffic, scaling, pod deletions, helm upgrade and uninstall)
	@dev/kind.sh test

kind-bench: ## Fixed rates through the kind cluster's Ingress to 3 handler pods (RATES="500,1000,2000"): send-to-row p50/p99 and stored share into bench/results and docs/BENCHMARKS.md
	@RATES="$(RATES)" dev/kind.sh bench

kind-down: ## Remove the kind cluster; offline, also stop its Docker engine and put the network back
	@dev/kind.sh down

bench: ## Run every benchmark stage (or STAGES="idle operator ..."; REPEATS=N runs each N times), write bench/results/latest.json
	@REPEATS="$(REPEATS)" dev/bench.sh $(STAGES)

chaos: ## Fault scenarios during traffic (stops the stack's Kafka and PostgreSQL: run alone), regenerate docs/RELIABILITY.md
	@dev/chaos.sh $(SCENARIOS)

observability-docs: stack-up ## Run the observability test (alerts fire and clear against a real Prometheus), redraw docs/OBSERVABILITY.md's panel charts from its answers
	$(CARGO) build --workspace --bins --locked
	$(DEV_CARGO) build --workspace --bins --locked
	source .stack/env && $(CARGO) test -p hookline-e2e --test observability --locked
	python3 dev/observability_report.py
