# The proxy toolkit's build. Everything it writes goes under build/.
#
#   make [M=NN]          build every milestone (or stage NN: gw01 .. gwNN) -> build/bin/gwNN
#   make test [M=NN]     deps, then unit tests (ASan+UBSan), e2e tests and conformance scripts,
#                        and all of them again on TSan; T=name: only matching tests, all
#                        output; VERBOSE=1: all output
#   make tsan [M=NN]     only the ThreadSanitizer half of that
#   make conformance [M=NN] [T=name] [V=tsan]   only the varnishtest scripts (conformance/)
#   make run             deps, build, start the most complete gateway on its demo config
#   make deps            install missing Debian packages (apt-get), quick when all is present
#   make handout M=NN DEST=DIR   a learner's tree: stage NN's LAB regions stubbed
#   make check-labs [M=NN]       prove lab tests fail on the stubs and catch seeded bugs
#   make grade M=NN      in a handout: verify tests are pristine, then the scorecard
#   make doctor          check the toolchain, packages, TSan, ports, limits
#   make bench [M=NN]    benchmarks against nginx and HAProxy (release build)
#   make fuzz [T=target S=seconds]   list the libFuzzer targets, or run one (V=fuzz build)
#   make clean
#
# Variants (V=): plain (default; -O2 -g; binaries in build/bin), asan (ASan+UBSan, for unit
# tests), tsan (ThreadSanitizer), release (-O2, no assertions; for make bench), fuzz (clang 14:
# libFuzzer coverage + ASan + UBSan, for the fuzz targets). Each variant has its own object
# tree, so they never mix and `make -j` is safe.

V ?= plain
M ?=

CC ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif
# libFuzzer comes with clang only (Debian's clang-14 + libclang-rt-14-dev), so the fuzz
# variant always builds with it, whatever CC says.
ifeq ($(V),fuzz)
CC := clang-14
endif

# All milestones present, e.g. "01-tcp 02-lb"; NN is the first two characters.
ALL_MS := $(sort $(notdir $(wildcard milestones/[0-9][0-9]-*)))
ms_num = $(firstword $(subst -, ,$(1)))
ifneq ($(M),)
SEL_MS := $(filter $(M)-%,$(ALL_MS))
ifeq ($(SEL_MS),)
$(error M=$(M): no milestone folder milestones/$(M)-*; have: $(ALL_MS))
endif
else
SEL_MS := $(ALL_MS)
endif

OUT := build/$(V)
OBJ := $(OUT)/obj
ifeq ($(V),plain)
BIN := build/bin
else
BIN := $(OUT)/bin
endif
TBIN := $(OUT)/tests

PKGS := libuv yaml-0.1 jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS := $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

# libuv's headers need POSIX declarations that plain -std=c11 hides: gnu11 (DESIGN.md).
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
BASE_CFLAGS := -std=gnu11 $(WARN) -g -D_GNU_SOURCE -Icommon -Imilestones -I/usr/share/include/llhttp $(PKG_CFLAGS) -MMD -MP
SAN_asan := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_tsan := -O1 -fno-omit-frame-pointer -fsanitize=thread
SAN_plain := -O2
SAN_release := -O2 -DNDEBUG -DGW_RELEASE
# Libraries get coverage instrumentation without libFuzzer's main (fuzzer-no-link); only a
# target's link adds -fsanitize=fuzzer.
SAN_fuzz := -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
VFLAGS := $(SAN_$(V))
ifeq ($(VFLAGS),)
$(error V=$(V): expected plain, asan, tsan, release or fuzz)
endif
LDSAN := $(filter -fsanitize=%,$(VFLAGS))
CFLAGS_ALL := $(BASE_CFLAGS) $(VFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL := $(PKG_LIBS) -lbearssl -lpthread -lm

# llhttp ships as C sources in node-llhttp. They do not build with our -Wextra -Werror, so
# they get their own flags; strict mode is a compile-time switch (DESIGN.md). Sanitizers
# apply to them too, fatal as for our code: undefined behaviour inside llhttp is a finding.
LLHTTP_SRC := $(wildcard /usr/share/llhttp/*.c)
LLHTTP_LIB := $(OUT)/lib/libllhttp.a
LLHTTP_CFLAGS := -O2 -g -fPIC -DLLHTTP_STRICT_MODE=1 -I/usr/share/include/llhttp $(filter -fsanitize=% -fno-sanitize-recover=%,$(VFLAGS))

# Test support objects are linked as objects, not as an archive, so that their constructor
# (GW_TEST_FILTER, see common/testsupport/gwtest.c) is always part of a test binary.
# ---- common ---------------------------------------------------------------------------
COMMON_SRC := $(sort $(wildcard common/*.c))
COMMON_LIB := $(OUT)/lib/libgw.a
TS_SRC := $(filter-out common/testsupport/failalloc.c,$(sort $(wildcard common/testsupport/*.c)))
COMMON_TESTS := $(patsubst common/tests/%.c,$(TBIN)/common/%,$(sort $(wildcard common/tests/test_*.c)))

objs = $(patsubst %.c,$(OBJ)/%.o,$(1))

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(if $(findstring /tests/,$<)$(findstring testsupport/,$<),$(CMOCKA_CFLAGS) -Icommon/testsupport) -c $< -o $@

$(OBJ)/llhttp/%.o: /usr/share/llhttp/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LLHTTP_CFLAGS) -c $< -o $@

$(LLHTTP_LIB): $(patsubst /usr/share/llhttp/%.c,$(OBJ)/llhttp/%.o,$(LLHTTP_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(COMMON_LIB): $(call objs,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(TBIN)/common/%: $(OBJ)/common/tests/%.o $(call objs,$(TS_SRC)) $(COMMON_LIB) $(LLHTTP_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) $(TEST_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS_ALL)

# Per-test link hook: a test binary listed here (folder/name under $(TBIN)) also links
# common/testsupport/failalloc.o and gets the linker's --wrap for every allocation function,
# so its tests can make the Nth allocation fail (failalloc.h). Only these binaries: --wrap
# without the wrappers does not link, and the other tests have no use for them.
FAILALLOC_TESTS := common/test_buf common/test_config common/test_httpd 04-http/test_h1 04-http/test_router \
                   04-http/test_httpcfg 05-discovery/test_disccfg
FAILALLOC_LDFLAGS := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup,--wrap=asprintf
$(foreach t,$(FAILALLOC_TESTS),$(eval $(TBIN)/$(t): $(OBJ)/common/testsupport/failalloc.o))
$(foreach t,$(FAILALLOC_TESTS),$(eval $(TBIN)/$(t): TEST_LDFLAGS := $(FAILALLOC_LDFLAGS)))

# ---- milestones -------------------------------------------------------------------------
# Milestone NN links its own library, the libraries of every earlier milestone (newest
# first, as static libraries must be listed), and common. Its library is every .c in its
# folder except main.c; its binary is build/bin/gwNN.
ms_chain = $(shell printf '%s\n' $(ALL_MS) | awk -v x=$(1) '{a[NR]=$$0} $$0==x{for(i=NR;i>=1;i--) printf "%s ", a[i]; exit}')
$(foreach m,$(ALL_MS),$(eval $(m)_LIB := $(OUT)/lib/libgw$(call ms_num,$(m)).a))
$(foreach m,$(ALL_MS),$(eval $(m)_DEPLIBS := $(foreach p,$(call ms_chain,$(m)),$($(p)_LIB)) $(COMMON_LIB) $(LLHTTP_LIB)))

define MILESTONE
$(1)_NUM := $(call ms_num,$(1))
$(1)_SRC := $$(filter-out milestones/$(1)/main.c,$$(sort $$(wildcard milestones/$(1)/*.c)))
$(1)_TESTS := $$(patsubst milestones/$(1)/tests/%.c,$(TBIN)/$(1)/%,$$(sort $$(wildcard milestones/$(1)/tests/test_*.c)))

$$($(1)_LIB): $$(call objs,$$($(1)_SRC))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^

$(BIN)/gw$$($(1)_NUM): $(OBJ)/milestones/$(1)/main.o $$($(1)_DEPLIBS)
	@mkdir -p $$(dir $$@)
	$(CC) $(LDSAN) -o $$@ $$^ $(LDLIBS_ALL)

$(TBIN)/$(1)/%: $(OBJ)/milestones/$(1)/tests/%.o $(call objs,$(TS_SRC)) $$($(1)_DEPLIBS)
	@mkdir -p $$(dir $$@)
	$(CC) $(LDSAN) $$(TEST_LDFLAGS) -o $$@ $$^ $(CMOCKA_LIBS) $(LDLIBS_ALL)
endef
$(foreach m,$(ALL_MS),$(eval $(call MILESTONE,$(m))))

# ---- fuzz targets ------------------------------------------------------------------------
# A target is common/fuzz/fuzz_NAME.c or milestones/NN-x/fuzz/fuzz_NAME.c (one
# LLVMFuzzerTestOneInput each); it links what a unit test of its folder links. Seeds live in
# <folder>/fuzz/corpus/NAME/, a dictionary (optional) in <folder>/fuzz/NAME.dict; running
# them is scripts/fuzz.py's job. Only the fuzz variant (clang) can build them.
FUZZ_SRC := $(sort $(wildcard common/fuzz/fuzz_*.c) $(foreach m,$(ALL_MS),$(wildcard milestones/$(m)/fuzz/fuzz_*.c)))
FUZZ_BINS := $(patsubst %.c,$(OUT)/fuzz/%,$(notdir $(FUZZ_SRC)))
FUZZ_LDFLAGS := -fsanitize=fuzzer,address,undefined
fuzz_libs = $(if $(filter common/%,$(1)),$(COMMON_LIB) $(LLHTTP_LIB),$($(word 2,$(subst /, ,$(1)))_DEPLIBS))
$(foreach f,$(FUZZ_SRC),$(eval $(OUT)/fuzz/$(basename $(notdir $(f))): $(call objs,$(f)) $(call fuzz_libs,$(f))))
$(FUZZ_BINS):
ifneq ($(V),fuzz)
	$(error fuzz targets build with V=fuzz only (clang + libFuzzer): make fuzz)
endif
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

# Stage NN's binaries are gw01 .. gwNN: its e2e suite runs earlier binaries too (a key of
# milestone NN must be refused by gwNN-1 with "needs gwNN or later"), and they cost only a
# main.o and a link each, since gwNN links every earlier library anyway. Unit tests stay
# per milestone. A milestone still under construction may have modules and unit tests but
# no main.c yet: it then has no binary.
STAGE_MS := $(if $(M),$(call ms_chain,$(SEL_MS)),$(ALL_MS))
SEL_BINS := $(foreach m,$(STAGE_MS),$(if $(wildcard milestones/$(m)/main.c),$(BIN)/gw$($(m)_NUM)))
# The final gateway is also build/bin/gateway (DESIGN.md): a link to the last milestone's
# binary, made with the stage that has it.
LAST_MS := $(lastword $(foreach m,$(ALL_MS),$(if $(wildcard milestones/$(m)/main.c),$(m))))
ifneq ($(filter $(LAST_MS),$(STAGE_MS)),)
SEL_BINS += $(BIN)/gateway
$(BIN)/gateway: $(BIN)/gw$($(LAST_MS)_NUM)
	ln -sf gw$($(LAST_MS)_NUM) $@
endif
SEL_TESTS := $(COMMON_TESTS) $(foreach m,$(SEL_MS),$($(m)_TESTS))

# ---- targets ---------------------------------------------------------------------------
.PHONY: all bins unit-bins fuzz-bins fuzz deps test tsan conformance run clean format print-% handout check-labs grade doctor bench bench-smoke
.DEFAULT_GOAL := all

all: bins
bins: $(SEL_BINS)
unit-bins: $(SEL_TESTS)
fuzz-bins: $(FUZZ_BINS)

deps:
	@scripts/deps.sh

# The test driver builds the variants it needs (asan units, plain e2e, tsan both) and
# prints the scorecard. See scripts/gwtest.py.
test: deps
	@/usr/bin/python3 scripts/gwtest.py $(if $(M),--milestone $(M)) $(if $(T),--only '$(T)') $(if $(REPEAT),--repeat $(REPEAT)) $(if $(VERBOSE),--verbose) --jobs $(or $(JOBS),2)

tsan: deps
	@/usr/bin/python3 scripts/gwtest.py --tsan-only $(if $(M),--milestone $(M)) $(if $(T),--only '$(T)') $(if $(VERBOSE),--verbose) --jobs $(or $(JOBS),2)

# The varnishtest scripts alone (conformance/README.md), on the plain build or V=tsan. They
# are also a stage of `make test` (scripts/gwtest.py), on both builds.
conformance: deps
	@/usr/bin/python3 scripts/conformance.py $(if $(M),--milestone $(M)) $(if $(T),--only '$(T)') --variant $(V) --jobs $(or $(JOBS),2)

run: deps
	@$(MAKE) --no-print-directory bins
	@/usr/bin/python3 scripts/demo.py

# Course tools (README.md, "Instructor guide").
handout:
	@test -n "$(M)" -a -n "$(DEST)" || { echo "usage: make handout M=NN DEST=DIR" >&2; exit 2; }
	@/usr/bin/python3 scripts/labs.py handout $(M) $(DEST)

check-labs: deps
	@/usr/bin/python3 scripts/checklabs.py $(if $(M),--milestone $(M))

grade: deps
	@/usr/bin/python3 scripts/grade.py $(if $(M),--milestone $(M)) $(if $(RESTORE),--restore)

doctor:
	@/usr/bin/python3 scripts/doctor.py

# Side-by-side benchmarks against nginx and HAProxy (benchmarks/README.md). Speed goals live
# here as ratios, never as timed assertions in tests. bench-smoke (part of `make test`)
# only proves the harness works.
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory -j$(or $(JOBS),2) V=release bins
	@/usr/bin/python3 benchmarks/bench.py $(if $(M),--milestone $(M))

bench-smoke:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory -j$(or $(JOBS),2) V=release bins
	@/usr/bin/python3 benchmarks/bench.py --smoke $(if $(M),--milestone $(M))

# Fuzzing (NOTES.md, "Fuzzing"): `make fuzz` lists the targets, `make fuzz T=name S=seconds`
# builds the fuzz variant and runs one (niced: long runs share the machine). Its corpus grows
# in build/fuzz/corpus/NAME; crashes land in build/fuzz/artifacts/.
fuzz: deps
	@$(MAKE) --no-print-directory -j$(or $(JOBS),2) V=fuzz fuzz-bins
	@/usr/bin/python3 scripts/fuzz.py $(if $(T),run '$(T)' $(if $(S),--seconds $(S)),list)

clean:
	rm -rf build

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

print-%:
	@echo '$($*)'

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
