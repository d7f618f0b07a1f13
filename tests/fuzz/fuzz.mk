# The protocol fuzzer: libFuzzer with ASan and UBSan over the frame reader, the strict
# decoder and the packer (tests/fuzz/fuzz_frame.c).
#   make -f tests/fuzz/fuzz.mk [FUZZ_SECONDS=60]   build, then fuzz from the seed corpus
#   make -f tests/fuzz/fuzz.mk build               build build/fuzz/fuzz_frame only
# New inputs go to build/fuzz/corpus; a crash leaves build/fuzz/crash-* and fails.

FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
OUT          := build/fuzz
FUZZ_SRC     := $(wildcard proto/*.c) common/procs.c common/strbuf.c common/utf8.c common/util.c \
                common/vocab.c tests/fuzz/fuzz_frame.c
FUZZ_HDR     := $(wildcard proto/*.h) common/procs.h common/strbuf.h common/utf8.h common/util.h \
                common/vocab.h
FUZZ_CFLAGS  := -g -O1 -std=c11 -D_GNU_SOURCE -I. -Wall -Wextra -Werror \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer $(shell pkg-config --cflags msgpack)
FUZZ_LIBS    := $(shell pkg-config --libs msgpack)

.PHONY: run build
run: $(OUT)/fuzz_frame
	@mkdir -p $(OUT)/corpus
	$(OUT)/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=512 \
	  -artifact_prefix=$(OUT)/ -print_final_stats=1 $(OUT)/corpus tests/fuzz/corpus

build: $(OUT)/fuzz_frame

$(OUT)/fuzz_frame: $(FUZZ_SRC) $(FUZZ_HDR) tests/fuzz/fuzz.mk
	@mkdir -p $(OUT)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_SRC) $(FUZZ_LIBS)
