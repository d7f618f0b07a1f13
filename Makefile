# autopack: batch-drain supervisor, worker and control client.
#   make            build the three binaries into $(O)/bin
#   make check      build and run every test (SANITIZE=1: under ASan+UBSan)
#   make fuzz       run the protocol fuzzer (FUZZ_SECONDS, default 60)
#   make bench      run the benchmarks
#   make demo       the main job: a batch drain on an embedded SQLite database
#   make deps       install missing Debian packages (root), or print the apt command

PKGS      := libuv sqlite3 msgpack libcurl jansson
BUILD_DEBS := gcc make pkg-config libuv1-dev libsqlite3-dev libmsgpack-dev \
              libcurl4-openssl-dev libjansson-dev
TEST_DEBS := python3 python3-msgpack python3-pytest python3-pytest-timeout \
             python3-pytest-xdist clang libclang-rt-14-dev strace
PYTHON    := /usr/bin/python3
VERSION   := 0.1.0

ifeq ($(SANITIZE),1)
O         ?= build/san
SANFLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
O         ?= build/rel
SANFLAGS  :=
endif

CC        ?= cc
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wformat=2 -Wshadow -Werror \
             -I. -DAUTOPACK_VERSION='"$(VERSION)"' $(SANFLAGS)
LDFLAGS   += $(SANFLAGS)
DEPCFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

LIB_SRC   := $(wildcard common/*.c proto/*.c)
SUP_SRC   := $(filter-out supervisor/main.c,$(wildcard supervisor/*.c))
CTL_SRC   := $(filter-out supervisor/ctl/main.c,$(wildcard supervisor/ctl/*.c))
WRK_SRC   := $(filter-out worker/main.c,$(wildcard worker/*.c))
UNIT_SRC  := $(wildcard tests/unit/*.c)

obj        = $(patsubst %.c,$(O)/obj/%.o,$(1))
LIB_A     := $(O)/lib/libautopack.a
SUP_A     := $(O)/lib/libsupervisor.a
CTL_A     := $(O)/lib/libctl.a
WRK_A     := $(O)/lib/libworker.a
BINS      := $(O)/bin/autopack-supervisor $(O)/bin/autopack-worker $(O)/bin/autopack-ctl
UNIT      := $(O)/bin/unit-tests
TOOLS     := $(O)/bin/proto-tool
STAMP     := build/.deps-ok

.PHONY: all deps check fuzz bench demo clean
all: $(BINS)

# Install the Debian packages in $(1) that are missing; as non-root, print the command.
define install_debs
	@missing=; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "autopack: missing packages; run as root: apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	  echo "autopack: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null || exit 1; \
	fi
	@mkdir -p build && touch $@
endef

deps: $(STAMP) build/.test-deps-ok
$(STAMP):
	$(call install_debs,$(BUILD_DEBS))
build/.test-deps-ok: $(STAMP)
	$(call install_debs,$(TEST_DEBS))

$(O)/obj/%.o: %.c | $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPCFLAGS) -MMD -MP -c -o $@ $<

$(LIB_A): $(call obj,$(LIB_SRC))
$(SUP_A): $(call obj,$(SUP_SRC))
$(CTL_A): $(call obj,$(CTL_SRC))
$(WRK_A): $(call obj,$(WRK_SRC))
$(O)/lib/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(O)/bin/autopack-supervisor: $(call obj,supervisor/main.c) $(SUP_A) $(LIB_A)
$(O)/bin/autopack-ctl: $(call obj,supervisor/ctl/main.c) $(CTL_A) $(LIB_A)
$(O)/bin/autopack-worker: $(call obj,worker/main.c) $(WRK_A) $(LIB_A)
$(UNIT): $(call obj,$(UNIT_SRC)) $(WRK_A) $(CTL_A) $(SUP_A) $(LIB_A)
$(O)/bin/proto-tool: $(call obj,tests/tools/proto_tool.c tests/unit/proto_samples.c) $(LIB_A)
$(O)/bin/%:
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

check: $(BINS) $(UNIT) $(TOOLS) build/.test-deps-ok
	@AUTOPACK_BIN=$(abspath $(O)/bin) AUTOPACK_SANITIZE=$(SANITIZE) \
	  $(PYTHON) -m pytest -c tests/pytest.ini tests

FUZZ_SECONDS ?= 60
fuzz: build/.test-deps-ok
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk FUZZ_SECONDS=$(FUZZ_SECONDS)

BENCH_TOOLS := $(O)/bin/bench-worker $(O)/bin/raw-insert
$(O)/bin/bench-worker: $(call obj,tests/bench/bench_worker.c) $(LIB_A)
$(O)/bin/raw-insert: $(call obj,tests/bench/raw_insert.c) $(LIB_A)

bench: $(BINS) $(BENCH_TOOLS) build/.test-deps-ok
	@AUTOPACK_BIN=$(abspath $(O)/bin) $(PYTHON) tests/bench/bench.py

demo: $(BINS)
	@AUTOPACK_BIN=$(abspath $(O)/bin) sh tests/demo.sh

clean:
	rm -rf build

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
