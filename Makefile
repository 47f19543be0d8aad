# Concurrency Lab. `make run` and `make test` do all the set-up on a fresh
# Debian machine (scripts/deps.sh installs what is missing); see README.md.

BUILD ?= build
OPT ?= -O2 -g
SAN ?=
PYTHON ?= python3

PKGS := libmicrohttpd jansson libcurl
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -fno-common -Werror
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SAN) \
             $(shell pkg-config --cflags $(PKGS)) -MMD -MP
LDLIBS_ALL = $(shell pkg-config --libs $(PKGS)) -lpthread -lm
TEST_LIBS = $(shell pkg-config --libs cmocka)

LIB_SRC := $(filter-out server/main.c,$(wildcard server/*.c handlers/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/handlers/openapi_data.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FORMAT_SRC = $(wildcard server/*.[ch] handlers/*.[ch] tests/unit/*.[ch] \
                        tests/fuzz/*.[ch] tests/integration/*.c bench/*.[ch])
FUZZ_SECONDS ?= 60

SAN_ASAN := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=all
SAN_TSAN := -fsanitize=thread

.PHONY: all run test check unit integration browser asan tsan fuzz bench soak \
        deps \
        format format-check clean

all: $(BUILD)/conlab

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The OpenAPI document, built into the binary (see handlers/openapi.c).
$(BUILD)/obj/handlers/openapi_data.o: handlers/openapi_data.S api/openapi.json
	@mkdir -p $(@D)
	$(CC) $(SAN) -c $< -o $@

$(BUILD)/libconlab.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/conlab: $(BUILD)/obj/server/main.o $(BUILD)/libconlab.a
	$(CC) $(SAN) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libconlab.a
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(TEST_LIBS) $(LDLIBS_ALL)

$(BUILD)/bench/minimal: $(BUILD)/obj/bench/minimal.o
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS_ALL)

deps:
	@scripts/deps.sh build test

# Build and serve the dashboard on http://127.0.0.1:8080 (Ctrl-C stops).
run:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	exec $(BUILD)/conlab --web-root web

# Every test layer: unit tests, integration tests against the real binary,
# the dashboard in a real browser.
test:
	@scripts/deps.sh build test
	@$(MAKE) --no-print-directory check browser

# What the sanitizer builds run too.
check: unit integration

# The pool's tests start real workers: the service binary in worker mode.
unit: $(UNIT_BIN) $(BUILD)/conlab
	@CONLAB_BIN=$(BUILD)/conlab scripts/run-unit.sh $(UNIT_BIN)

integration: $(BUILD)/conlab
	$(PYTHON) tests/integration/run.py --binary $(BUILD)/conlab

# The dashboard in Debian's headless Chromium, driven by playwright-core
# (which downloads no browser). Screenshots go to tests/browser/artifacts/.
browser: $(BUILD)/conlab
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	node tests/browser/dashboard.test.mjs --binary $(BUILD)/conlab \
	    --web-root web

asan:
	@scripts/deps.sh build test
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 -g" \
	    SAN="$(SAN_ASAN)" check

tsan:
	@scripts/deps.sh build test
	@$(MAKE) --no-print-directory BUILD=build/tsan OPT="-O1 -g" \
	    SAN="$(SAN_TSAN)" check

# Each libFuzzer target of tests/fuzz/ for FUZZ_SECONDS, one after another,
# on a copy of its seeds; crash inputs land in build/fuzz/artifacts/.
fuzz:
	@scripts/deps.sh build fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

# Every benchmark in one run (about 9 minutes on 2 cores): writes
# bench/REPORT.md and the plots in bench/plots/ (see bench/all.sh).
bench:
	@scripts/deps.sh build test bench
	@$(MAKE) --no-print-directory all $(BUILD)/bench/minimal
	bench/all.sh $(BUILD)

# Two minutes of the mixed wrk load, memory sampled every 5 s; adds its
# verdict to bench/REPORT.md (see bench/soak.sh).
soak:
	@scripts/deps.sh build test bench
	@$(MAKE) --no-print-directory all
	bench/soak.sh $(BUILD)

format:
	clang-format -i $(FORMAT_SRC)

format-check:
	@scripts/deps.sh lint
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build

.SECONDARY:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
