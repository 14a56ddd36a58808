# make test is the whole test suite: formatting, vet, staticcheck and every
# Go test. Tests that need PostgreSQL or Redis read APIWALLET_TEST_DATABASE_URL
# and APIWALLET_TEST_REDIS_URL (bash .ci/run starts both and sets them).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test run build check conns soak fuzz fuzz-ci deploy deploy-down

test: check
	go test -count=1 -race -timeout 30m ./...

check:
	@out=$$(gofmt -l .); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...

run:
	go run ./cmd/apiwallet serve

build:
	go build -o bin/apiwallet ./cmd/apiwallet

# Reliability runs (minutes; not part of make test): see docs/RELIABILITY.md.
CONNS ?= 10000
SOAK_DURATION ?= 10m
SOAK_RATE ?= 300

conns:
	go run ./bench/cmd/stress -mode conns -conns $(CONNS) -duration 30s

soak:
	go run ./bench/cmd/stress -mode soak -duration $(SOAK_DURATION) -rate $(SOAK_RATE)

# Fuzzing (docs/FUZZING.md): every go test -fuzz target in turn, each for
# FUZZTIME; executions are appended to fuzz.log. make test runs the seed
# corpora only. fuzz-ci is the short run CI makes.
FUZZTIME ?= 10m
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

fuzz-ci:
	FUZZTIME=10s scripts/fuzz.sh

# The Compose deployment (docker-compose.yml, docs/DEPLOYMENT.md): secrets
# generated once into deploy/secrets/, then every service built and started.
# The wallet runs as the owner of those files (the image's user when root
# runs this).
DEPLOY_UID := $(shell [ "$$(id -u)" = 0 ] && echo 65532 || id -u)
DEPLOY_GID := $(shell [ "$$(id -u)" = 0 ] && echo 65532 || id -g)

deploy:
	@docker compose version >/dev/null 2>&1 || { echo "make deploy needs Docker with its compose plugin (docker compose version)"; exit 1; }
	sh deploy/secrets.sh deploy/secrets
	APIWALLET_UID=$(DEPLOY_UID) APIWALLET_GID=$(DEPLOY_GID) docker compose up -d --build
	@echo "wallet:     http://localhost:$${WALLET_PORT:-6789}/  (health: /monitoring/health)"
	@echo "grafana:    http://localhost:$${GRAFANA_PORT:-3000}/  (admin / \$$GRAFANA_ADMIN_PASSWORD, default admin)"
	@echo "prometheus: http://localhost:$${PROMETHEUS_PORT:-9090}/"

deploy-down:
	APIWALLET_UID=$(DEPLOY_UID) APIWALLET_GID=$(DEPLOY_GID) docker compose down
