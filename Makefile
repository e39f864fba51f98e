# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# ringmesh build. `make` builds everything into $(BUILD)/ (default build/);
# `make V=1` shows the commands; `make SAN=1` builds with ASan+UBSan into build-san/.
# `make deps` installs the Debian packages the build and the tests need.
# `make image` builds the OCI image the Helm chart (helm/ringmesh) runs.

ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= cc
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	  -D_GNU_SOURCE -Iinclude -Iuser -Itools -I$(BUILD) -MMD -MP $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS := -lbpf -lelf -lz -luring -lyaml -lpcre2-8 -lpthread -lm
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Iinclude -Ibpf \
	      -I/usr/include/$(shell uname -m)-linux-gnu -Wall -Wno-unused-function

# Every .c under user/ and tools/ except the program entry points goes into one
# static library, so unit tests link the same objects the programs run.
MAINS := user/ringmeshd/main.c tools/ringmesh/main.c $(wildcard tools/bin/*.c)
LIB_SRCS := $(filter-out $(MAINS),$(wildcard user/common/*.c user/http/*.c user/policy/*.c \
	user/ringmeshd/*.c tools/ringmesh/*.c))
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
# The Kubernetes client of `ringmesh sync` (user/k8s): its own archive, linked into
# the CLI and its unit tests only; ringmeshd never links libcurl or jansson.
K8S_SRCS := $(wildcard user/k8s/*.c)
K8S_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(K8S_SRCS))
K8S_LIBS := $(shell pkg-config --libs libcurl jansson)
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
TOOL_BINS := $(patsubst tools/bin/%.c,$(BUILD)/%,$(wildcard tools/bin/*.c))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

.DELETE_ON_ERROR:
# Keep generated skeletons and objects: they are inputs of later builds, not scratch.
.SECONDARY:
.PHONY: all deps test test-asan soak unit check e2e demo bench bench-quick clean install-deps-check fuzz-long \
	image

all: $(BUILD)/ringmeshd $(BUILD)/ringmesh $(TOOL_BINS) $(UNIT_BINS)

deps:
	$(Q)tools/deps.sh

# The OCI image the Helm chart runs (localhost/ringmesh:VERSION), saved as
# $(BUILD)/ringmesh-image.tar; tools/image.sh says how to load or push it.
image: all
	$(Q)tools/image.sh $(BUILD)

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/lib/*.h) $(wildcard include/ringmesh/*.h)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(Q)$(BPFTOOL) gen object $@ $@.tmp && rm -f $@.tmp

$(BUILD)/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

$(BUILD)/obj/%.o: %.c | $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libringmesh.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libk8s.a: $(K8S_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/ringmeshd: $(BUILD)/obj/user/ringmeshd/main.o $(BUILD)/libringmesh.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# `sync` (tools/ringmesh/sync.c) calls into libk8s.a, which calls back into libringmesh.a
$(BUILD)/ringmesh: $(BUILD)/obj/tools/ringmesh/main.o $(BUILD)/libringmesh.a $(BUILD)/libk8s.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $< -Wl,--start-group $(filter %.a,$^) -Wl,--end-group $(LDLIBS) \
		$(K8S_LIBS) -o $@

$(BUILD)/%: $(BUILD)/obj/tools/bin/%.o $(BUILD)/libringmesh.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/test_k8s%: $(BUILD)/obj/tests/unit/test_k8s%.o $(BUILD)/libk8s.a \
		$(BUILD)/libringmesh.a
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) $(K8S_LIBS) -lcmocka -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libringmesh.a
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

# Unit tests: pure modules, no privileges and no test tools needed (the tests that
# need root and bpffs skip without them), so no `deps` here.
unit: all
	$(Q)tests/unit/run.sh $(BUILD)

# Structure: clang-format clean, layers (pure http/ and policy/, l4 apart from l7), no
# file-level import cycle but ring.c with its handlers. Needs the objects of `all`.
check: all
	$(Q)tools/check.sh $(BUILD)

# End to end: needs root (BPF, cgroups, netns); skips with exit 77 otherwise.
e2e: deps all
	$(Q)tests/e2e/run.sh $(BUILD)

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory SAN=1 all
	$(Q)tests/run.sh $(BUILD) build-san

# The end-to-end suites against the ASan/UBSan daemon of build-san/ (the CLI and test
# tools stay build/'s): leaks at exit, memory errors and UB reports fail the suite.
test-asan: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build all
	$(Q)$(MAKE) --no-print-directory SAN=1 BUILD=build-san build-san/ringmeshd
	$(Q)RINGMESHD=build-san/ringmeshd tests/e2e/run.sh build

# A long run under churn, not part of make test: SOAK_MINUTES of bounded keep-alive and
# fresh-connection load with rule applies and backend kills; RSS/fd each minute and a
# verdict (tools/soak.sh says what it checks).
SOAK_MINUTES ?= 30
soak: deps all
	$(Q)SOAK_MINUTES=$(SOAK_MINUTES) tools/soak.sh $(BUILD)

demo: deps all
	$(Q)tools/demo.sh $(BUILD)

# The benchmark (tools/bench/run.sh): interleaved rounds, medians and ranges, tables
# and plot in $(BUILD)/bench (~30 min on 2 CPUs); bench-quick is the short run (~6 min).
# BENCH_ARGS=--publish also updates README.md, tools/bench/results.md and bench.png.
bench: deps all
	$(Q)tools/bench/run.sh --build $(BUILD) $(BENCH_ARGS)

bench-quick: deps all
	$(Q)tools/bench/run.sh --quick --build $(BUILD) $(BENCH_ARGS)

# Long fuzzing (not in CI): each libFuzzer target to 10 million executions, growing and
# then minimising the committed corpus tests/fuzz/corpus/TARGET/. FUZZ=http1 (or
# http1_resp, cfg) runs one target.
FUZZ ?= all
fuzz-long:
	$(Q)tests/fuzz/run.sh --runs 10000000 0 build-fuzz $(FUZZ)

clean:
	$(Q)rm -rf build build-san build-*

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
