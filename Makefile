# Build, install and test the dockernet CNI plugins.
#   make            build the plugins and the hello workload into bin/
#   make install    copy the plugins to /opt/cni/bin and conf/ to /etc/cni/net.d
#   make installer-image  the cluster installer image (podman), for conf/kubernetes/dnet-installer.yaml
#   make test       every test: unit, per-plugin integration (root) and end-to-end (root)
#   make test-clients  Podman, nerdctl, containerd 1.6 and 2 CRI (crictl), ctr and cnitool driving the plugins (root)
#   make cluster-tools etcd, flanneld, the flannel plugin, containerd 2 and nerdctl for the cluster and client tests
#   make demo       one packet through `docker run -p`, in private network namespaces (root)
#   make bench      ours vs the reference plugins, side by side (root; its run time is in the README)
#   make bench-cluster  the same through kube-flannel's stack on flannel clusters (part of make bench)
#   make bench-cri  110 pods at once through containerd's CRI, ours then the reference (part of make bench)
#   make bench-publish  the same into test/bench/results, and test/bench/README.md's table from it
#   make bench-timeline one chain ADD, phase by phase, ours and the reference (root)

SHELL     := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
GO        ?= go
BIN       := $(CURDIR)/bin
TOOLS     := $(CURDIR)/.tools/bin
REF_TOOLS := $(CURDIR)/.tools/ref
CLUSTER_TOOLS := $(CURDIR)/.tools/cluster
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/dockernet/cni-plugins/plugins/pkg/buildinfo.Version=$(VERSION)
CNI_BIN_DIR  ?= /opt/cni/bin
CNI_CONF_DIR ?= /etc/cni/net.d
BIN_DIR      ?= /usr/local/sbin
CNITOOL_VERSION ?= v1.3.1
CRICTL_VERSION  ?= v1.37.0

.PHONY: all tidy bench-cri bench-timeline build tools cluster-tools cnitool deps install installer installer-image test test-clients unit integration e2e fuzz demo bench bench-cluster bench-publish bench-readme clean

all: build

# One go command for the plugins and one for the rest: each compiles a
# package once and links its binaries in parallel, and both share the
# build cache. The plugins differ only in their entry point: on amd64 they
# start at oneproc's stub, which starts the Go runtime on one CPU (see
# plugins/pkg/oneproc).
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
PLUGIN_ENTRY := $(if $(filter amd64,$(shell $(GO) env GOARCH 2>/dev/null)),-E github.com/dockernet/cni-plugins/plugins/pkg/oneproc.entry)
GOBUILD_PLUGINS := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS) $(PLUGIN_ENTRY)'
# Every main package under the plugins' folders (their binaries are the
# list in plugins/pkg/install); then dnetctl and the hello workload.
PLUGIN_MAINS := ./plugins/main/... ./plugins/ipam/... ./plugins/meta/...
OTHER_MAINS  := ./plugins/cmd/dnetctl ./test/hello
BUILD_MAINS  := $(GOBUILD_PLUGINS) -o $(BIN)/ $(PLUGIN_MAINS) && $(GOBUILD) -o $(BIN)/ $(OTHER_MAINS)

build:
	@mkdir -p $(BIN)
	@$(BUILD_MAINS)
	@echo "built: $$(ls $(BIN) | tr '\n' ' ')"

# cnitool drives the plugins in the demo and the end-to-end tests, crictl
# containerd's CRI in the client tests; the
# reference firewall plugin is chained after ours in one of them, as
# Podman's default conflist does; the reference host-local shares a store
# with ours in another, and the reference chain sets up containers that
# ours then deletes; its bridge and ptp call our host-local, and mix with
# ours (bandwidth too) in the mixed-chain tests.
REF_TOOL_PKGS := firewall=meta/firewall tuning=meta/tuning host-local=ipam/host-local bridge=main/bridge portmap=meta/portmap ptp=main/ptp bandwidth=meta/bandwidth
tools: $(TOOLS)/cnitool $(TOOLS)/crictl $(addprefix $(REF_TOOLS)/,firewall tuning host-local bridge portmap ptp bandwidth)
cnitool: $(TOOLS)/cnitool
$(TOOLS)/cnitool:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/containernetworking/cni/cnitool@$(CNITOOL_VERSION)
$(TOOLS)/crictl:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install sigs.k8s.io/cri-tools/cmd/crictl@$(CRICTL_VERSION)
$(REF_TOOLS)/%:
	@mkdir -p $(REF_TOOLS)
	CGO_ENABLED=0 GOBIN=$(REF_TOOLS) $(GO) install -trimpath $(REF_PKG)/$(patsubst $*=%,%,$(filter $*=%,$(REF_TOOL_PKGS)))@$(REF_VERSION)

# The cluster tests' etcd, flanneld (host-gw and vxlan), the flannel CNI
# plugin and containerd 2, built from the Go module proxy once per version
# (a first build takes about 6 minutes here; the Go build cache keeps it).
cluster-tools:
	@bash scripts/cluster-tools.sh $(CLUSTER_TOOLS)

# The cluster installer (conf/kubernetes/) is a module of its own: it needs
# client-go, whose first build takes a minute that no plugin should pay.
INSTALLER_IMAGE ?= localhost/dnet-installer:latest
installer:
	@mkdir -p $(BIN)
	@cd plugins/cmd/dnet-installer && $(GOBUILD) -o $(BIN)/dnet-installer .

installer-image: build installer
	bash scripts/installer-image.sh $(BIN) $(INSTALLER_IMAGE)

# dnetctl install writes each file atomically and, on a host where Docker
# (or anything else) already has docker0 or 172.17.0.0/16, installs the
# network on a free bridge and subnet and says so.
install: build
	$(BIN)/dnetctl install -bin-src $(BIN) -bin-dir $(CNI_BIN_DIR) -conf-dir $(CNI_CONF_DIR) -conflist conf/10-docker0.conflist
	install -d $(BIN_DIR) && install -m 0755 $(BIN)/dnetctl $(BIN_DIR)/

# Tests run the built binaries: DNET_BIN and CNITOOL tell them where.
TEST_ENV := DNET_BIN=$(BIN) CNITOOL=$(TOOLS)/cnitool CRICTL=$(TOOLS)/crictl REF_BIN=$(REF_TOOLS) CLUSTER_TOOLS=$(CLUSTER_TOOLS)
GOTEST   := $(GO) test -count=1

# The real clients alone (Podman, containerd's CRI via crictl, ctr,
# cnitool), each printing what it ran and its count of checks; `make test`
# runs them too.
test-clients: deps build tools cluster-tools installer
	$(TEST_ENV) $(GOTEST) -v -timeout 10m -run '^(TestClient|TestInstallerImage)' ./test

# As root, install what is missing (podman, containerd, runc, …) first.
deps:
	@if [ "$$(id -u)" = 0 ]; then bash scripts/install-deps.sh --clients; else echo "deps: not root, installing nothing"; fi

# Without root: every test of the plugins' packages but those that call
# testenv.RequireRoot, which skip (DNET_TESTS=unit, even under CI).
unit:
	DNET_TESTS=unit $(GOTEST) ./plugins/...

# As root, the packages with root tests, on the built binaries.
ROOT_PKGS = $(shell grep -rl --include='*_test.go' 'testenv.RequireRoot' plugins | xargs -n1 dirname | sort -u | sed 's|^|./|')
integration: build
	$(TEST_ENV) $(GOTEST) $(ROOT_PKGS)

e2e: build tools cluster-tools
	$(TEST_ENV) $(GOTEST) -timeout 15m ./test/...

# Each module's go.mod and go.sum are exactly what its code needs.
tidy:
	@for m in . plugins/cmd/dnet-installer test/bench; do (cd $$m && $(GO) mod tidy -diff) || { echo "tidy: run go mod tidy in $$m"; exit 1; }; done

# The bench is a module of its own (test/bench): its unit tests run there.
test: tidy build tools cluster-tools installer
	$(TEST_ENV) $(GOTEST) -timeout 20m ./...
	cd test/bench && $(GOTEST) ./...
	cd plugins/cmd/dnet-installer && $(GOTEST) ./...
	$(MAKE) --no-print-directory fuzz

# Every parser of runtime or on-disk input, fuzzed for a few seconds each
# (a count of inputs, about 3 s here: a time limit can end a run that is
# still minimising with a spurious "context deadline exceeded"). The seeds
# are real inputs, in the targets; FUZZ_SCALE multiplies the counts.
FUZZ_SCALE ?= 1
FUZZ_TARGETS := \
	./plugins/main/bridge/bridgeplugin:FuzzLoadConfig:100000 \
	./plugins/meta/portmap/portmapplugin:FuzzLoadConfig:60000 \
	./plugins/ipam/host-local/hostlocal:FuzzLoadConfig:100000 \
	./plugins/ipam/host-local/hostlocal:FuzzReservationContent:150000 \
	./plugins/pkg/attachment:FuzzRecord:2000
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$$(( $${rest#*:} * $(FUZZ_SCALE) )); \
		log=$$(mktemp); \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$${n}x $$pkg >$$log 2>&1 \
			&& echo "fuzz: $$name in $$pkg: $$n inputs, ok" \
			|| { cat $$log; rm -f $$log; exit 1; }; \
		rm -f $$log; \
	done

demo: build cnitool
	bash scripts/demo.sh

# The reference plugins are installed from the Go module proxy into a
# temporary directory for the run only; nothing of theirs is kept.
REF_VERSION ?= v1.10.0
REF_PKG     := github.com/containernetworking/plugins/plugins
BENCH_OUT   ?= $(CURDIR)/bench-results
BENCH_FLAGS ?=
# Ours first, then theirs with the same Go flags: CGO_ENABLED=0 (as their
# release binaries are built) and -trimpath, so the standard library and
# the modules both use are compiled once.
bench:
	@ref=$$(mktemp -d /tmp/dnet-ref.XXXXXX); trap 'rm -rf $$ref' EXIT; \
	mkdir -p $(BIN) && $(BUILD_MAINS) && (cd test/bench && $(GOBUILD) -o $(BIN)/bench .) || exit 1; \
	echo "installing reference plugins $(REF_VERSION) into $$ref"; \
	CGO_ENABLED=0 GOBIN=$$ref $(GO) install -trimpath -ldflags="-s -w" $(REF_PKG)/main/bridge@$(REF_VERSION) $(REF_PKG)/ipam/host-local@$(REF_VERSION) $(REF_PKG)/meta/portmap@$(REF_VERSION) >$$ref/install.log 2>&1 \
		|| { cat $$ref/install.log; echo "installing the reference plugins failed"; exit 1; }; \
	$(BIN)/bench -ours $(BIN) -ref $$ref -hello $(BIN)/hello -out $(BENCH_OUT) $(BENCH_FLAGS)
	$(MAKE) --no-print-directory bench-cluster
	$(MAKE) --no-print-directory bench-cri

# Cross-node throughput and chain ADD/DEL through flannel's delegation,
# ours and the reference alternated on twin clusters (test/cluster_bench_test.go).
bench-cluster: build tools cluster-tools installer
	@mkdir -p $(BENCH_OUT)
	$(TEST_ENV) DNET_CLUSTER_BENCH=1 DNET_CLUSTER_BENCH_OUT=$(BENCH_OUT)/cluster.txt $(GOTEST) -v -timeout 20m -run '^TestClusterBench$$' ./test | grep -A8 'cluster bench:'

# Kubelet's 110 pods at once through containerd's CRI, then removed:
# each pod's network setup and teardown, ours then the reference
# (test/cri_churn_bench_test.go).
bench-cri: build tools
	@mkdir -p $(BENCH_OUT)
	$(TEST_ENV) DNET_CRI_BENCH=1 DNET_CRI_BENCH_OUT=$(BENCH_OUT)/cri-churn.txt $(GOTEST) -v -timeout 20m -run '^TestCRIChurnBench$$' ./test | grep -A4 'cri churn bench:'

# One chain ADD taken apart, phase by phase, ours and the reference side
# by side (plugins/pkg/timeline marks, test/bench/timeline.go lines them
# up): into $(BENCH_OUT)/timeline.md, and with TIMELINE_FILL containers
# present into timeline-$(TIMELINE_FILL).md.
TIMELINE_RUNS ?= 30
# The second timeline: ours and the floor with this many containers present.
TIMELINE_FILL ?= 1000
bench-timeline: build tools
	@mkdir -p $(BIN)/floor
	@(cd test/bench && $(GOBUILD) -o $(BIN)/bench . && $(GOBUILD) -o $(BIN)/floor/floor ./floor)
	$(BIN)/bench -ours $(BIN) -ref $(REF_TOOLS) -hello $(BIN)/hello -out $(BENCH_OUT) -timeline $(TIMELINE_RUNS) -floor $(BIN)/floor
	$(BIN)/bench -ours $(BIN) -ref $(REF_TOOLS) -hello $(BIN)/hello -out $(BENCH_OUT) -timeline $(TIMELINE_RUNS) -floor $(BIN)/floor \
		-timeline-fill $(TIMELINE_FILL) -variants ours-nftables,ours-iptables

# The results kept in the repository, and test/bench/README.md's table from them.
bench-publish:
	$(MAKE) bench BENCH_OUT=$(CURDIR)/test/bench/results
	$(MAKE) bench-readme

bench-readme:
	cd test/bench && $(GO) run . -out $(CURDIR)/test/bench/results -readme $(CURDIR)/test/bench/README.md

clean:
	rm -rf $(BIN) $(CURDIR)/.tools $(BENCH_OUT)
