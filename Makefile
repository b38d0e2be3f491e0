# slodrill -- one non-recursive GNU Makefile.
#
#   make            build bin/slodrill
#   make demo       install what is missing, build, run scenarios/primary-revoked-key.yaml
#   make test       install what is missing, build, run every test
#   make asan       the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make valgrind   the end-to-end tests under valgrind
#   make lint       cppcheck and the banned-function grep
#   make bench      benchmarks (figures go to docs/performance.md by hand)
#   V=1             show full commands

BUILD   ?= build
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
BIN     ?= bin
CC      ?= cc
PKGS    := libcurl libevent libevent_pthreads libcjson yaml-0.1 sqlite3 hiredis
TESTPKGS := cmocka

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
OPT     ?= -O2 -g
SAN     ?=
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) $(SAN) $(WARN) -MMD -MP -I. \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
TEST_CFLAGS := $(shell pkg-config --cflags $(TESTPKGS) 2>/dev/null)
TEST_LDLIBS := $(shell pkg-config --libs $(TESTPKGS) 2>/dev/null)

ifeq ($(V),1)
Q :=
else
Q := @
endif

MODULES := common router fakeproviders reports harness
# Layers, top first: a module links the ones after it in this list. Router
# tests also link the fakes: they are the router's upstreams in tests.
DEPS_harness       := harness router fakeproviders reports common
DEPS_router        := router fakeproviders common
DEPS_fakeproviders := fakeproviders common
DEPS_reports       := reports common
DEPS_common        := common

src_of = $(filter-out harness/main.c,$(wildcard $(1)/*.c))
obj_of = $(patsubst %.c,$(BUILD)/%.o,$(call src_of,$(1)))
lib_of = $(BUILD)/lib$(1).a

ALL_OBJ := $(foreach m,$(MODULES),$(call obj_of,$(m)))
LIBS    := $(foreach m,$(MODULES),$(call lib_of,$(m)))

TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

.SECONDARY:
.PHONY: all demo test test-run asan valgrind lint format bench install clean deps deps-test
all: $(BIN)/slodrill

deps:
	$(Q)scripts/deps.sh build

deps-test:
	$(Q)scripts/deps.sh test

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(TEST_CFLAGS) -c -o $@ $<

define lib_rule
$(call lib_of,$(1)): $(call obj_of,$(1))
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  AR      $$@")
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call lib_rule,$(m))))

$(BIN)/slodrill: $(BUILD)/harness/main.o $(foreach m,$(DEPS_harness),$(call lib_of,$(m)))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(SAN) -o $@ $(BUILD)/harness/main.o $(foreach m,$(DEPS_harness),$(call lib_of,$(m))) $(LDLIBS)

# tests/test_<module>_*.c links <module> and the layers below it.
test_mod = $(firstword $(foreach m,$(MODULES),$(if $(filter test_$(m)%,$(1)),$(m))))
.SECONDEXPANSION:
$(BUILD)/tests/%: $(BUILD)/tests/%.o $$(foreach m,$$(DEPS_$$(call test_mod,$$*)),$$(call lib_of,$$(m)))
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(SAN) -o $@ $< $(foreach m,$(DEPS_$(call test_mod,$*)),$(call lib_of,$(m))) $(LDLIBS) $(TEST_LDLIBS)

demo: deps
	$(Q)$(MAKE) -j$(JOBS) --no-print-directory all
	$(Q)$(BIN)/slodrill run scenarios/primary-revoked-key.yaml

test: deps-test
	$(Q)$(MAKE) -j$(JOBS) --no-print-directory all $(TEST_BIN)
	$(Q)BUILD=$(BUILD) BIN=$(BIN) tests/run.sh

asan: deps-test
	$(Q)$(MAKE) -j$(JOBS) --no-print-directory BUILD=build-asan BIN=build-asan/bin \
	    OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    build-asan/bin/slodrill $(patsubst $(BUILD)/%,build-asan/%,$(TEST_BIN))
	$(Q)BUILD=build-asan BIN=build-asan/bin SLODRILL_SANITIZED=1 \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    tests/run.sh

valgrind: deps-test
	$(Q)$(MAKE) -j$(JOBS) --no-print-directory all $(TEST_BIN)
	$(Q)BUILD=$(BUILD) BIN=$(BIN) SLODRILL_VALGRIND=1 tests/run.sh

lint:
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --suppress=missingIncludeSystem -I. $(MODULES) tests
	$(Q)! grep -nE '\b(sprintf|strcpy|strcat|atoi|gets) *\(' $(foreach m,$(MODULES),$(m)/*.c) tests/*.c \
	    | grep -v 'snprintf\|vsnprintf' || { echo "banned function used"; exit 1; }

format:
	$(Q)clang-format -i $(foreach m,$(MODULES),$(m)/*.[ch]) tests/*.c

bench: deps-test
	$(Q)$(MAKE) -j$(JOBS) --no-print-directory all
	$(Q)BIN=$(BIN) tests/bench.sh

install: all
	install -D -m 0755 $(BIN)/slodrill $(DESTDIR)$(PREFIX)/bin/slodrill

PREFIX ?= /usr/local

clean:
	rm -rf build build-asan bin

-include $(ALL_OBJ:.o=.d) $(TEST_BIN:=.d)
