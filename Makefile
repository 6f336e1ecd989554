# Sakila: the two set-up commands are `make demo` (main job) and `make test` (whole suite).
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test check unit alerts integration e2e generate check-generated toolchain

## The main job: bring up the testbed (or use KUBECONFIG), install the operator, create the samples.
demo: toolchain
	flock /run/sakila-e2e.lock e2e/demo

## The whole test suite; .ci/run calls exactly this.
test: toolchain check unit alerts integration e2e

## Formatting, lints, and generated files in sync.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(MAKE) check-generated

unit:
	$(CARGO) test --workspace --lib --bins --test generated_files

## The alert rules: valid, and each one's promtool unit tests (tests/prometheus/).
alerts:
	tests/prometheus/promtool check rules charts/sakila/files/prometheus-rules.yaml
	tests/prometheus/promtool test rules tests/prometheus/rules-test.yaml

## The SQL trait against real mysqld 9.7 servers from the testbed's MySQL build, and the S3
## client against a versitygw server (the test builds it with `e2e/images/build versitygw-binary`).
integration:
	e2e/images/build mysql-rootfs >/dev/null
	$(CARGO) test --test mysql_integration -- --test-threads=2
	$(CARGO) test --test objectstore_integration -- --test-threads=2

## The end-to-end suite on the testbed (or the cluster in KUBECONFIG).
## One e2e run at a time on this machine: each run installs its own operator build.
e2e:
	flock /run/sakila-e2e.lock bash -c 'env=$$(e2e/prepare) && eval "$$env" && $(MAKE) check-rendered && $(CARGO) test -p sakila-e2e --no-fail-fast -- --test-threads=3'


## Regenerates every generated file: the CRD (and the chart's copy), and the operator manifest
## rendered from the chart (needs helm: run after `e2e/testbed up`, which builds it).
generate:
	$(CARGO) run --quiet --bin crdgen > crds/mysqlcluster.yaml
	$(CARGO) run --quiet --bin crdgen mysqlbackup > crds/mysqlbackup.yaml
	cp crds/mysqlcluster.yaml crds/mysqlbackup.yaml charts/sakila/crds/
	$(RENDER_OPERATOR) > config/operator/sakila.yaml

RENDER_OPERATOR = helm template sakila charts/sakila --namespace sakila-system --include-crds --skip-tests

## The CRD and its chart copy match the Rust types (helm is not needed for this part).
check-generated:
	$(CARGO) run --quiet --bin crdgen | diff -u crds/mysqlcluster.yaml - || { echo "crds/ is stale: run 'make generate'"; exit 1; }
	$(CARGO) run --quiet --bin crdgen mysqlbackup | diff -u crds/mysqlbackup.yaml - || { echo "crds/ is stale: run 'make generate'"; exit 1; }
	diff -u crds/mysqlcluster.yaml charts/sakila/crds/mysqlcluster.yaml || { echo "the chart's CRD is stale: run 'make generate'"; exit 1; }
	diff -u crds/mysqlbackup.yaml charts/sakila/crds/mysqlbackup.yaml || { echo "the chart's CRD is stale: run 'make generate'"; exit 1; }

## The committed operator manifest matches the chart (needs helm on PATH).
check-rendered:
	$(RENDER_OPERATOR) | diff -u config/operator/sakila.yaml - || { echo "config/operator is stale: run 'make generate'"; exit 1; }

## Toolchain pieces the build needs on a fresh machine.
toolchain:
	rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
