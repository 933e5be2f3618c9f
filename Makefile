# make run: set up and start the service on embedded defaults.
# make test: set up and run every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PROTOS := $(wildcard protos/meetings/v1/*.proto)
GEN_DIR := gen/meetings/v1
GEN_STAMP := gen/.stamp
DESCRIPTOR := gateway/meetings.pb
SDK_TESTS := tests/sdk
SDK_MODULES := $(SDK_TESTS)/node_modules/.installed
SDK_GRPC_WEB := $(SDK_TESTS)/gen/grpc-web.js
# clients/: buf and the stub generators for other languages, pinned by its package-lock.json.
CLIENTS := clients
CLIENT_MODULES := $(CLIENTS)/node_modules/.installed
BUF := $(CLIENTS)/node_modules/.bin/buf
STUBS := gen/stubs/.stamp
# Debian's protoc (Java's generator), Go and grpc-java plugins, and the Java libraries the
# Java client test builds on (grpc-java 1.41 with Netty, protobuf-java 3.21 as protoc is;
# tests/clients/test_java.py says which jar needs which).
DEBIAN_STUB_TOOLS := protobuf-compiler protoc-gen-go protoc-gen-go-grpc \
	protobuf-compiler-grpc-java-plugin libgrpc-java libprotobuf-java libnetty-java \
	libperfmark-java libguava-java libgeronimo-annotation-1.3-spec-java
PYTEST_ARGS ?=

.PHONY: all setup gen run test lint bench fuzz clean stubs proto-release

all: setup

setup: $(INSTALLED) $(GEN_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The project itself is installed editable, after gen/ exists (it maps the `meetings` package there).
$(INSTALLED): $(PY) requirements.txt requirements-dev.txt pyproject.toml
	$(PY) -m pip install --quiet -r requirements-dev.txt
	mkdir -p $(GEN_DIR) $(dir $(DESCRIPTOR))
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Python modules, typing stubs and the gateway's descriptor set, rebuilt when a .proto changes
# (server/transport/rest_names.py names the descriptor's fields by their REST keys).
$(GEN_STAMP): $(PROTOS) $(INSTALLED)
	mkdir -p $(GEN_DIR) $(dir $(DESCRIPTOR))
	$(PY) -m grpc_tools.protoc -Iprotos -Iprotos/vendor \
		--python_out=gen --grpc_python_out=gen --plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_out=gen --mypy_grpc_out=gen $(PROTOS) && \
	$(PY) -m grpc_tools.protoc -Iprotos -Iprotos/vendor --include_imports --include_source_info \
		--descriptor_set_out=$(DESCRIPTOR) $(PROTOS) google/rpc/status.proto google/rpc/error_details.proto && \
	$(PY) -m server.transport.rest_names $(DESCRIPTOR)
	touch gen/meetings/__init__.py $(GEN_DIR)/__init__.py gen/meetings/py.typed
	touch $@

gen: $(GEN_STAMP)

# tests/sdk: the stock JS SDK and playwright-core exactly as package-lock.json pins them
# (npm ci, again whenever the lock changes), and Debian's chromium for them (as root, if missing).
$(SDK_MODULES): $(SDK_TESTS)/package-lock.json
	command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -qq chromium \
		|| { apt-get update -qq && apt-get install -y -qq chromium; }
	cd $(SDK_TESTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# tests/sdk's gRPC-Web client: stubs from the protos by protoc-gen-es (pinned in the lock),
# bundled with Connect-ES's transport by esbuild into one ES module for Node and Chromium.
$(SDK_GRPC_WEB): $(PROTOS) $(SDK_TESTS)/grpc-web.js $(SDK_MODULES) $(INSTALLED)
	rm -rf $(SDK_TESTS)/gen && mkdir -p $(SDK_TESTS)/gen/stubs
	$(PY) -m grpc_tools.protoc -Iprotos -Iprotos/vendor \
		--plugin=protoc-gen-es=$(SDK_TESTS)/node_modules/.bin/protoc-gen-es \
		--es_out=$(SDK_TESTS)/gen/stubs --es_opt=target=js,import_extension=js \
		$(PROTOS) google/api/annotations.proto google/api/http.proto google/api/httpbody.proto
	$(SDK_TESTS)/node_modules/.bin/esbuild $(SDK_TESTS)/grpc-web.js --bundle --format=esm \
		--log-level=warning --outfile=$@

$(CLIENT_MODULES): $(CLIENTS)/package-lock.json
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Clients in TypeScript (@grpc/grpc-js), Go and Java under gen/stubs/ (protos/buf.gen.yaml), with
# google.rpc's error details, and the plugins installed from Debian (as root, if missing).
$(STUBS): $(PROTOS) protos/buf.gen.yaml $(CLIENT_MODULES)
	command -v grpc_java_plugin >/dev/null && command -v protoc-gen-go-grpc >/dev/null \
		&& [ -e /usr/share/java/grpc-stub.jar ] || [ "$$(id -u)" != 0 ] \
		|| apt-get install -y -qq $(DEBIAN_STUB_TOOLS) >/dev/null \
		|| { apt-get update -qq && apt-get install -y -qq $(DEBIAN_STUB_TOOLS) >/dev/null; }
	rm -rf gen/stubs
	$(BUF) generate protos --template protos/buf.gen.yaml \
		--path protos/meetings --path protos/vendor/google/rpc
	# Go code takes google.rpc from its own module, google.golang.org/genproto.
	rm -rf gen/stubs/go/google
	touch $@

stubs: $(STUBS)

# The descriptor that `buf breaking` compares against: rewrite it when a release is cut
# (deliberately; say what changed in CHANGELOG.md).
proto-release: $(CLIENT_MODULES)
	$(BUF) build protos --exclude-source-info --path protos/meetings -o protos/release.txtpb

# The database (embedded unless DATABASE_URL is set), the gRPC server and the Envoy gateway,
# supervised together; prints the REST base URL. Ports: GATEWAY_PORT, ENVOY_ADMIN_PORT, GRPC_PORT.
run: setup
	$(PY) -m server.supervisor

# nftables for the per-client connection limit's test (gateway/connlimit.nft), where root can
# install it; without it that one test is skipped, saying so. LuaJIT for the bench's smoke test
# (the cost of the REST nulls); the Java and Node client tests build on gen/stubs.
test: setup $(SDK_MODULES) $(SDK_GRPC_WEB) $(STUBS)
	command -v nft >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -qq nftables >/dev/null \
		|| echo "nftables could not be installed: the per-client connection test is skipped"
	command -v luajit >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -qq luajit >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

# buf lint and buf breaking (against the last release's descriptor), ruff (with the SQL-text
# ban outside server/storage/), mypy --strict, and the layer contracts of docs/architecture.md
# (import-linter, configured in pyproject.toml).
lint: setup $(CLIENT_MODULES)
	$(BUF) lint protos
	$(BUF) breaking protos --against protos/release.txtpb
	$(VENV)/bin/ruff check server tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The byte-level request fuzzer at full size (make test runs 1,500 of these): 50,000 mutated
# requests over every REST route, derandomized (the same requests on every run).
FUZZ_MUTATIONS ?= 50000
fuzz: setup
	FUZZ_MUTATIONS=$(FUZZ_MUTATIONS) $(PY) -m pytest -q tests/gateway/test_fuzz_mutations.py

# Speed against its own ceilings, in one run (bench/run.py): prints a table and writes
# bench/results/latest.json. Needs wrk, and LuaJIT for the cost of the gateway's REST nulls
# (installed here if missing; as root).
bench: setup
	command -v wrk >/dev/null || apt-get install -y wrk
	command -v luajit >/dev/null || apt-get install -y -qq luajit
	$(PY) -m bench.run

clean:
	rm -rf gen $(DESCRIPTOR) $(VENV) $(CLIENTS)/node_modules $(CLIENTS)/node/build
