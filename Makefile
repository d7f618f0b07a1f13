# autopack: batch-drain supervisor, worker and control client.
#   make            build the three binaries into $(O)/bin
#   make check      build and run every test (SANITIZE=1: under ASan+UBSan)
#   make fuzz       run the protocol fuzzer (FUZZ_SECONDS, default 60)
#   make bench      run the benchmarks
#   make check-mutants  prove the tests catch a break of each key guarantee
#   make MUTANT=name    build with one guarantee broken (-DAUTOPACK_MUTANT_name) into
#                   build/mutant-name
#   make demo       the main job: a batch drain on an embedded SQLite database
#   make deps       install missing Debian packages (root), or print the apt command
#   make install    install the binaries, man pages, bash completion and the systemd unit
#                   under $(DESTDIR)$(PREFIX) (PREFIX=/usr/local); make uninstall removes them

PKGS      := libuv sqlite3 libpq msgpack libcurl jansson
SUP_PKGS  := libmicrohttpd
WK_PKGS   := libseccomp
BUILD_DEBS := gcc make pkg-config libuv1-dev libsqlite3-dev libpq-dev libmsgpack-dev \
              libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev libseccomp-dev
TEST_DEBS := python3 python3-msgpack python3-pytest python3-pytest-timeout \
             python3-pytest-xdist python3-sqlalchemy clang libclang-rt-14-dev strace \
             clang-format python3-prometheus-client python3-jsonschema python3-yaml \
             systemd man-db groff-base sqlite3 iproute2 \
             chromium prometheus postgresql python3-psycopg2 python3-pyflakes
BENCH_DEBS := beanstalkd time
# make demo's LLM stand-in (tests/llm_standin.py) and the request schema it checks.
DEMO_DEBS := python3 python3-jsonschema python3-yaml
PYTHON    := /usr/bin/python3
VERSION   := 0.1.0

PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
COMPDIR   ?= $(PREFIX)/share/bash-completion/completions
UNITDIR   ?= $(PREFIX)/lib/systemd/system

ifneq ($(MUTANT),)
O         ?= build/mutant-$(MUTANT)
MUTFLAGS  := -DAUTOPACK_MUTANT_$(MUTANT)
endif
ifeq ($(SANITIZE),1)
O         ?= build/san
SANFLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
O         ?= build/rel
SANFLAGS  :=
endif
# One name per build directory (O=$PWD/build/rel is build/rel), so the dependency files
# written under one name are read under the same one.
override O := $(patsubst $(CURDIR)/%,%,$(abspath $(O)))

CC        ?= cc
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wformat=2 -Wshadow -Werror \
             -I. -DAUTOPACK_VERSION='"$(VERSION)"' $(SANFLAGS) $(MUTFLAGS)
# -fconserve-stack (GCC): inlining does not pile the buffers of several callees into one
# frame, so the programs run under a small stack limit (README.md, "What can go wrong").
CFLAGS    += $(shell $(CC) -fconserve-stack -E -x c /dev/null >/dev/null 2>&1 && echo -fconserve-stack)
# --as-needed: each binary loads only the shared libraries it calls (the worker neither
# libpq nor SQLite nor libuv), which is most of a process's start-up.
LDFLAGS   += $(SANFLAGS) -Wl,--as-needed
DEPCFLAGS  = $(shell pkg-config --cflags $(PKGS) $(SUP_PKGS) $(WK_PKGS) 2>/dev/null)
LDLIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
SUP_LDLIBS = $(shell pkg-config --libs $(SUP_PKGS) 2>/dev/null) -lpthread
WK_LDLIBS  = $(shell pkg-config --libs $(WK_PKGS) 2>/dev/null)

# One archive per library; each binary links the libraries it uses, users first.
LIBS      := calib estimate store fingerprint proto common
src_calib       := $(wildcard common/calib/*.c)
src_estimate    := $(wildcard common/estimate/*.c)
src_store       := $(wildcard common/store/*.c common/store/sqlite/*.c common/store/pg/*.c)
src_fingerprint := $(wildcard common/fingerprint/*.c)
src_proto       := $(wildcard proto/*.c)
src_common      := $(wildcard common/*.c)
src_supervisor  := $(filter-out supervisor/main.c,$(wildcard supervisor/*.c))
# The dashboard page, compiled into the supervisor as a C array.
GEN_DASHBOARD   := $(O)/gen/dashboard.c
src_ctl         := $(filter-out ctl/main.c,$(wildcard ctl/*.c))
src_worker      := $(filter-out worker/main.c,$(wildcard worker/*.c))
UNIT_SRC  := $(wildcard tests/unit/*.c)

obj        = $(patsubst %.c,$(O)/obj/%.o,$(1))
lib        = $(foreach l,$(1),$(O)/lib/lib$(l).a)
BINS      := $(O)/bin/autopack-supervisor $(O)/bin/autopack-worker $(O)/bin/autopack-ctl
UNIT      := $(O)/bin/unit-tests
TOOLS     := $(O)/bin/proto-tool $(O)/bin/fsync-shim.so $(O)/bin/plant-shim.so \
             $(O)/bin/pipe-shim.so $(O)/bin/pq-shim.so $(O)/bin/full-shim.so \
             $(O)/bin/enosys-shim.so $(O)/bin/clock-shim.so
STAMP     := build/.deps-ok

.PHONY: all deps check check-mutants unit-tests fuzz bench demo clean format format-check \
        install uninstall
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
$(STAMP): Makefile
	$(call install_debs,$(BUILD_DEBS))
build/.test-deps-ok: $(STAMP) Makefile
	$(call install_debs,$(TEST_DEBS))

$(O)/obj/%.o: %.c | $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPCFLAGS) -MMD -MP -c -o $@ $<

$(GEN_DASHBOARD): supervisor/dashboard.html
	@mkdir -p $(dir $@)
	{ echo '/* Generated by make from supervisor/dashboard.html. */'; \
	  echo '#include <stddef.h>'; echo 'const char dashboard_html[] = {'; \
	  od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; echo '0x00 };'; \
	  echo 'const size_t dashboard_html_len = sizeof dashboard_html - 1;'; } > $@.tmp && mv $@.tmp $@
$(O)/obj/gen/dashboard.o: $(GEN_DASHBOARD) | $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(foreach l,$(LIBS) supervisor ctl worker,$(eval $(O)/lib/lib$(l).a: $(call obj,$(src_$(l)))))
$(O)/lib/libsupervisor.a: $(O)/obj/gen/dashboard.o
$(O)/lib/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(O)/bin/autopack-supervisor: $(call obj,supervisor/main.c) $(call lib,supervisor store calib estimate fingerprint proto common)
$(O)/bin/autopack-ctl: $(call obj,ctl/main.c) $(call lib,ctl calib estimate store fingerprint proto common)
$(O)/bin/autopack-worker: $(call obj,worker/main.c) $(call lib,worker estimate fingerprint proto common)
$(UNIT): $(call obj,$(UNIT_SRC)) $(call lib,worker ctl supervisor $(LIBS))
$(O)/bin/proto-tool: $(call obj,tests/tools/proto_tool.c tests/unit/proto_samples.c) $(call lib,proto common)
# The tests' LD_PRELOAD shims, for fsync (tests/tools/fsync_shim.c), for a link planted
# at a name just created (tests/tools/plant_shim.c), for pipes of two pages
# (tests/tools/pipe_shim.c) and for a process held after it sends a statement to
# PostgreSQL (tests/tools/pq_shim.c), for a full disk (tests/tools/full_shim.c) and for a
# kernel without a system call (tests/tools/enosys_shim.c) and for a host whose clock is
# off (tests/tools/clock_shim.c): never sanitised, as they are
# loaded before the sanitiser's runtime.
$(O)/bin/fsync-shim.so: tests/tools/fsync_shim.c
$(O)/bin/plant-shim.so: tests/tools/plant_shim.c
$(O)/bin/pipe-shim.so: tests/tools/pipe_shim.c
$(O)/bin/pq-shim.so: tests/tools/pq_shim.c
$(O)/bin/full-shim.so: tests/tools/full_shim.c
$(O)/bin/enosys-shim.so: tests/tools/enosys_shim.c
$(O)/bin/clock-shim.so: tests/tools/clock_shim.c
$(O)/bin/fsync-shim.so $(O)/bin/plant-shim.so $(O)/bin/pipe-shim.so $(O)/bin/pq-shim.so \
    $(O)/bin/full-shim.so $(O)/bin/enosys-shim.so $(O)/bin/clock-shim.so: | $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl -lpthread
$(O)/bin/autopack-supervisor $(UNIT): LDLIBS += $(SUP_LDLIBS)
$(O)/bin/autopack-worker $(UNIT): LDLIBS += $(WK_LDLIBS)
$(O)/bin/%:
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

C_FILES    = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build/*')

# Apply the one style (.clang-format) to every C file, or fail naming the files that differ.
format: build/.test-deps-ok
	clang-format -i $(C_FILES)
format-check: build/.test-deps-ok
	@clang-format --dry-run --Werror $(C_FILES) 2>&1 | grep -o '^[^:]*\.[ch]' | sort -u | \
	  sed 's/^/autopack: not formatted (make format): /' | grep . >&2 && exit 1 || true
	@$(PYTHON) -m pyflakes tests

check: $(BINS) $(UNIT) $(TOOLS) build/.test-deps-ok format-check
	@AUTOPACK_BIN=$(abspath $(O)/bin) AUTOPACK_SANITIZE=$(SANITIZE) \
	  $(PYTHON) -m pytest -c tests/pytest.ini tests

unit-tests: $(UNIT) $(TOOLS)

# Build each mutant (tests/mutants.py) and prove that the tests guarding it fail.
check-mutants: build/.test-deps-ok
	@$(PYTHON) tests/mutants.py

FUZZ_SECONDS ?= 60
fuzz: build/.test-deps-ok
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk FUZZ_SECONDS=$(FUZZ_SECONDS)

BENCH_TOOLS := $(O)/bin/bench-worker $(O)/bin/raw-insert $(O)/bin/beanstalk-drain \
               $(O)/bin/llm-server
$(O)/bin/bench-worker: $(call obj,tests/bench/bench_worker.c) $(call lib,$(LIBS))
$(O)/bin/raw-insert: $(call obj,tests/bench/raw_insert.c) $(call lib,$(LIBS))
$(O)/bin/beanstalk-drain: $(call obj,tests/bench/beanstalk_drain.c) $(call lib,common)
$(O)/bin/llm-server: $(call obj,tests/bench/llm_server.c)
build/.bench-deps-ok: $(STAMP) Makefile
	$(call install_debs,$(BENCH_DEBS))

# AUTOPACK_BENCH_ONLY=bench_peers,bench_real runs only those; AUTOPACK_BENCH_REPEATS=N.
bench: $(BINS) $(BENCH_TOOLS) build/.test-deps-ok build/.bench-deps-ok
	@AUTOPACK_BIN=$(abspath $(O)/bin) $(PYTHON) tests/bench/bench.py

build/.demo-deps-ok: $(STAMP) Makefile
	$(call install_debs,$(DEMO_DEBS))

demo: $(BINS) build/.demo-deps-ok
	@AUTOPACK_BIN=$(abspath $(O)/bin) sh tests/demo.sh

# What `make install` puts where, besides the binaries.
MAN1       := docs/man/autopack-supervisor.1 docs/man/autopack-ctl.1
MAN7       := docs/man/autopack.7
COMPLETION := $(O)/share/autopack-ctl.bash
INSTALLED  := $(addprefix $(BINDIR)/,$(notdir $(BINS))) \
              $(addprefix $(MANDIR)/man1/,$(notdir $(MAN1))) \
              $(addprefix $(MANDIR)/man7/,$(notdir $(MAN7))) \
              $(COMPDIR)/autopack-ctl $(UNITDIR)/autopack-supervisor@.service

# The bash completion comes from autopack-ctl's own command table.
$(COMPLETION): $(O)/bin/autopack-ctl
	@mkdir -p $(dir $@)
	$< completion bash > $@.tmp && mv $@.tmp $@

# The unit is written at install time: it names the supervisor in this install's BINDIR.
# The supervisor and the worker, which hold the API keys, are execute-only: the kernel
# makes a process started from a file its user may not read not dumpable from its exec,
# so no other process of that user reads its environment or its descriptors.
install: $(BINS) $(COMPLETION)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
	  $(DESTDIR)$(COMPDIR) $(DESTDIR)$(UNITDIR)
	install -m 0711 $(filter-out %/autopack-ctl,$(BINS)) $(DESTDIR)$(BINDIR)/
	install -m 0755 $(filter %/autopack-ctl,$(BINS)) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN7) $(DESTDIR)$(MANDIR)/man7/
	install -m 0644 $(COMPLETION) $(DESTDIR)$(COMPDIR)/autopack-ctl
	sed -e 's|@BINDIR@|$(BINDIR)|g' contrib/autopack-supervisor@.service \
	  > $(DESTDIR)$(UNITDIR)/autopack-supervisor@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/autopack-supervisor@.service

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

clean:
	rm -rf build

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
