# Faultline's build entry points. `make demo` and `make test` are all a fresh Debian machine needs.

APT_PACKAGES := libsqlite3-dev libibverbs-dev pkg-config curl openssl python3
SWIFT ?= swift

.PHONY: all deps build release test test-slurm demo-slurm check-report test-tsan bench bench-sketch bench-engine bench-scenarios bench-serve bench-agent bench-replay bench-report bench-peers bench-instructions demo interop fuzz format lint clean

all: build

# Installs the C libraries the build links against, when any is missing.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "missing packages:$$missing; run: sudo apt-get update && sudo apt-get install -y$$missing" >&2; \
			exit 1; \
		fi; \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The Slurm action against a real slurmctld and three slurmd on this host (ci/slurm-world; root,
# installs Debian's slurm-wlm and munge when missing). The world is removed afterwards, also on failure.
test-slurm: deps
	$(SWIFT) build --build-tests
	@world=$$(mktemp -d); \
	ci/slurm-world start "$$world" 3 >/dev/null || { ci/slurm-world stop "$$world"; rm -rf "$$world"; exit 1; }; \
	FAULTLINE_SLURM_CONF="$$world/slurm.conf" $(SWIFT) test --skip-build --filter RealSlurmTests; status=$$?; \
	ci/slurm-world stop "$$world"; rm -rf "$$world"; exit $$status

# faultline demo quarantining through a real Slurm: a world whose 8 nodes bear the demo's names
# (ci/slurm-world; root), the faulty nodes drained and resumed for real; then no node may be left
# drained. The world is removed afterwards, also on failure.
demo-slurm: build
	@world=$$(mktemp -d); \
	ci/slurm-world start "$$world" 8 gpu-%04d 0 >/dev/null || { ci/slurm-world stop "$$world"; rm -rf "$$world"; exit 1; }; \
	SLURM_CONF="$$world/slurm.conf" .build/debug/faultline demo --nodes 8 --rails 2 --slurm --dir "$$world/demo"; status=$$?; \
	left=$$(SLURM_CONF="$$world/slurm.conf" sinfo -h -N -o '%N %T %E' | grep -i 'drain' || true); \
	if [ -n "$$left" ]; then echo "demo-slurm: nodes left drained: $$left" >&2; status=1; fi; \
	drained=$$(grep -o 'node gpu-[0-9]* reason set to: faultline' "$$world/slurmctld.log" | sort -u | wc -l); \
	echo "demo-slurm: slurmctld drained $$drained node(s) with a faultline reason"; \
	if [ "$$drained" -ne 3 ]; then echo "demo-slurm: expected the 3 faulty nodes drained" >&2; status=1; fi; \
	ci/slurm-world stop "$$world"; rm -rf "$$world"; exit $$status

# The Net and Service tests under ThreadSanitizer, in their own scratch directory so the normal build stays warm.
test-tsan: deps
	$(SWIFT) build --build-tests -Xswiftc -sanitize=thread --scratch-path .build-tsan
	$(SWIFT) test --skip-build --scratch-path .build-tsan --filter "NetTests|ServiceTests"

# Speed figures: release build, warm-up, repeated runs, medians. See docs/benchmarks.md.
bench: bench-sketch bench-engine bench-scenarios

bench-sketch: release
	.build/release/faultline-bench

# One window of a 100k-GPU fleet (12,500 nodes x 8 rails) closed by the engine: time and peak memory.
bench-engine: release
	.build/release/faultline-bench --engine scenarios/large/fleet-100k-gpus.json

# The large scenarios (4,096 nodes; 1,000 noisy windows of 512 nodes) scored: tens of minutes.
bench-scenarios: release
	ci/score-suite --faultline .build/release/faultline scenarios/large/fleet-4096.json scenarios/large/noisy-512-1000-windows.json

# One agent probing 64 peers x 8 rails at the default rates and answering as many: CPU share
# (user and system) and RSS over 60 s (docs/agent.md, "Cost").
bench-agent: release
	ci/measure-agent.sh .build/release/faultline 60

# The weekly report of a week of a 1,000-node fleet's rollups (docs/reports.md, "Speed"); the store
# is made once in .build/bench-week.db.
bench-report: release
	.build/release/faultline-bench --weekly-report .build/bench-week.db

# faultline replay --db over 30 windows of a simulated 1,000-node fleet, extrapolated to 24 hours
# (docs/replay.md, "Speed").
bench-replay: release
	ci/measure-replay.sh .build/release/faultline

# The correlator under load: a release faultline serve for 1,000 nodes and faultline-bench --serve
# posting 64-pair reports from 16 threads (docs/service.md, "Measured load").
bench-serve: release
	ci/load-serve

# The same data through DataDog's ddsketch and Apache DataSketches (Python, from ci/requirements.txt).
bench-peers: release
	ci/bench-peers

# Instructions per operation, counted by valgrind (needs valgrind): the same on every run.
bench-instructions: release
	ci/bench-instructions

# The whole system on this machine: the correlator and 16 agent processes on loopback addresses,
# faults injected and healed, about 75 s. A release build: 17 debug processes would crowd 2 cores.
demo: release
	.build/release/faultline demo

# The weekly report of a short demo rendered by headless Chromium (light, dark, print), its
# screenshots checked not blank (docs/reports.md). Needs Debian's chromium.
check-report: build
	ci/check-report .build/debug/faultline

# DataDog's Python ddsketch decodes what we encode and answers within the accuracy.
interop: build
	"$$(ci/python-env)" ci/check-ddsketch-interop.py --faultline .build/debug/faultline

# Coverage-guided fuzzing of the sketch decoder with libFuzzer (see ci/fuzz-sketch).
fuzz: deps
	ci/fuzz-sketch

format:
	$(SWIFT) format --in-place --recursive --parallel Package.swift Sources Tests

lint:
	$(SWIFT) format lint --strict --recursive --parallel Package.swift Sources Tests

clean:
	rm -rf .build .build-tsan
