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
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
TOOL_BINS := $(patsubst tools/bin/%.c,$(BUILD)/%,$(wildcard tools/bin/*.c))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

.DELETE_ON_ERROR:
# Keep generated skeletons and objects: they are inputs of later builds, not scratch.
.SECONDARY:
.PHONY: all deps test unit e2e demo bench clean install-deps-check image

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

$(BUILD)/ringmeshd: $(BUILD)/obj/user/ringmeshd/main.o $(BUILD)/libringmesh.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/ringmesh: $(BUILD)/obj/tools/ringmesh/main.o $(BUILD)/libringmesh.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/%: $(BUILD)/obj/tools/bin/%.o $(BUILD)/libringmesh.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libringmesh.a
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

# Unit tests: pure modules, no privileges and no test tools needed (the tests that
# need root and bpffs skip without them), so no `deps` here.
unit: all
	$(Q)tests/unit/run.sh $(BUILD)

# End to end: needs root (BPF, cgroups, netns); skips with exit 77 otherwise.
e2e: deps all
	$(Q)tests/e2e/run.sh $(BUILD)

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory SAN=1 all
	$(Q)tests/run.sh $(BUILD) build-san

demo: deps all
	$(Q)tools/demo.sh $(BUILD)

bench: deps all
	$(Q)tools/bench/l4.sh $(BUILD)
	$(Q)tools/bench/l7.sh $(BUILD)

clean:
	$(Q)rm -rf build build-san build-*

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
