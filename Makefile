# qforge - build, test, demo, bench.  `make help` lists the targets.
#
# Layout: one folder per stage (common formats quant kernels calib convert/pipeline).  Every .c
# file in the library folders goes into build/libqforge.a; convert/*.c is the CLI; each
# tests/test_*.c is one cmocka test program.  CUDA sources (kernels/*.cu) are compiled
# when nvcc is found, otherwise the build is CPU-only.  Dependencies are Debian packages
# (scripts/deps.sh installs them).

CC      ?= gcc
BUILD   ?= build
OPT     ?= -O3
# AVX2+FMA when this CPU has them (the model runner's matmul is 2-3x faster); ARCH= to override.
ARCH    ?= $(shell grep -q -m1 ' avx2 ' /proc/cpuinfo 2>/dev/null && grep -q -m1 ' fma ' /proc/cpuinfo && echo "-mavx2 -mfma -mf16c")
CFLAGS  ?= $(OPT) -g
# WERROR= keeps warnings warnings (a newer compiler on a GPU host, say); CI builds with -Werror.
WERROR  ?= -Werror
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) -fopenmp -pthread $(ARCH) -MMD -MP
LDLIBS  := -lzip -lxxhash -ljansson -lpcre2-8 -lcrypto -lm

# ---- include rules: each folder sees only the folders below it (docs/architecture.md) ----
# A source file is compiled with -I for exactly these folders, so an upward #include does
# not compile.  Tests and tools see everything.
INC_common          := common
INC_quant           := common quant
INC_formats         := $(INC_quant) formats
INC_kernels         := $(INC_quant) kernels
INC_calib/tokenizer := common calib/tokenizer
INC_calib/model     := $(INC_quant) formats kernels calib/model
INC_calib/eval      := $(INC_calib/model) calib/eval
INC_calib/calibrate := $(INC_calib/model) calib/tokenizer calib/calibrate
# the conversion pipeline (plan, quantize, write, manifest, resume journal) is library code too:
# an engine that links libqforge.a converts without the CLI (docs/library.md)
INC_convert/pipeline := $(INC_calib/calibrate) calib/eval convert/pipeline
LIB_DIRS := common quant formats kernels calib/tokenizer calib/model calib/eval calib/calibrate convert/pipeline
INC_convert         := $(LIB_DIRS) convert
INCS    := $(addprefix -I,$(INC_convert))
space := $(subst ,, )
comma := ,
# -I flags of the folder that holds source $(1)
incs_of = $(addprefix -I,$(INC_$(patsubst %/,%,$(dir $(1)))))

LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
CLI_SRC  := $(wildcard convert/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
GPU_TEST_SRC := $(wildcard tests/gpu_test_*.c)
CU_SRC   := $(wildcard kernels/*.cu)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
GPU_TESTS := $(GPU_TEST_SRC:tests/%.c=$(BUILD)/tests/%)

# ---- CUDA detection ---------------------------------------------------------------------
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifneq ($(strip $(NVCC)),)
CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCHS ?= -gencode arch=compute_90a,code=sm_90a
NVCCFLAGS  ?= -O3 -std=c++17 $(CUDA_ARCHS) -Xcompiler -Wall,-fPIC $(if $(WERROR),-Xcompiler -Werror) --expt-relaxed-constexpr
CU_OBJ     := $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
CFLAGS     += -DQF_HAVE_CUDA -I$(CUDA_HOME)/include
LDLIBS     += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcusolver -lcublasLt -lcublas -lcudart_static -ldl -lrt -lpthread -lstdc++
CUDA_MSG   := CUDA: yes ($(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/nvcc \1/p'), sm_90a)
else
CU_OBJ     :=
CUDA_MSG   := CUDA: no - CPU-only build
endif

QFORGE := $(BUILD)/qforge
# The same CLI with the fault-injection hooks the resume tests drive (tests/cli/resume.sh):
# only these objects are compiled with -DQF_TESTING, so build/qforge and libqforge.a have none.
QFORGE_TESTING := $(BUILD)/qforge-testing
TESTING_OBJ := $(BUILD)/testing/convert/pipeline/write_queue.o $(BUILD)/testing/tests/qf_test_hooks.o
NPROC  := $(shell nproc 2>/dev/null || echo 2)
LIBQF  := $(BUILD)/libqforge.a

.PHONY: all deps demo test test-gpu bench bench-gpu clean help check-deps fuzz-replay sanitize fuzz
all: $(QFORGE) $(QFORGE_TESTING) ## build the qforge binary and libqforge.a
	@echo "qforge built: $(QFORGE)  [$(CUDA_MSG); OpenMP: yes; ARCH: $(if $(ARCH),$(ARCH),generic)]"

$(LIBQF): $(LIB_OBJ) $(CU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(QFORGE): $(CLI_OBJ) $(LIBQF)
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(LIBQF) $(LDLIBS)

# the test build's objects first: the archive's write_queue.o is then not pulled in
$(QFORGE_TESTING): $(CLI_OBJ) $(TESTING_OBJ) $(LIBQF)
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(TESTING_OBJ) $(LIBQF) $(LDLIBS)

$(BUILD)/testing/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DQF_TESTING $(call incs_of,$<) -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(call incs_of,$<) -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $(call incs_of,$<) -DQF_HAVE_CUDA -MMD -MP -c $< -o $@

# The CUDA kernels' repack, dequant and indexing code run on the CPU with mma.sync / ldmatrix
# emulated from the PTX spec (kernels/dev/emulate_wq.cu): needs nvcc, no GPU.
$(BUILD)/emulate_wq: kernels/dev/emulate_wq.cu $(wildcard kernels/*.cuh kernels/*.h kernels/*_ref.c quant/qf_fmt*.h quant/qf_numfmt.h) kernels/ct_layout.c
	@mkdir -p $(dir $@)
	$(NVCC) -std=c++17 -O2 -DQF_HAVE_CUDA $(INCS) $(CUDA_ARCHS) -Xcompiler -fopenmp \
	  kernels/dev/emulate_wq.cu kernels/ct_layout.c $(wildcard kernels/*_ref.c) common/qf_error.c common/qf_dtype.c \
	  -o $@ -lgomp

# Every public header (first line not "internal to") in one C++ translation unit, linked
# against libqforge.a: they must compile as C++ and carry their extern "C" guards.
CXX ?= g++
PUBLIC_HEADERS := $(foreach d,$(LIB_DIRS),$(shell grep -L -m1 -i 'internal to' $(wildcard $(d)/*.h)))
CXX_TEST := $(BUILD)/tests/test_cxx_headers
$(BUILD)/tests/public_headers.inc: $(PUBLIC_HEADERS) Makefile
	@mkdir -p $(dir $@)
	@printf '#include "%s"\n' $(notdir $(PUBLIC_HEADERS)) > $@
$(CXX_TEST): tests/test_cxx_headers.cc $(BUILD)/tests/public_headers.inc $(LIBQF)
	$(CXX) -std=c++17 -O1 -Wall -Wextra $(WERROR) -D_GNU_SOURCE $(filter -DQF_HAVE_CUDA -I$(CUDA_HOME)/include,$(CFLAGS)) \
	  -fopenmp -pthread $(INCS) -I$(BUILD)/tests -o $@ $< $(LIBQF) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(LIBQF) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INCS) -Itests -o $@ $< $(LIBQF) $(LDLIBS) -lcmocka

deps: ## install missing Debian packages (apt-get as root, else prints the command)
	@scripts/deps.sh

demo: deps ## install, build, convert the bundled tiny-llama into every scheme, verify, print a table
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@scripts/demo.sh $(QFORGE)

EMULATOR := $(if $(strip $(NVCC)),$(BUILD)/emulate_wq)

test: deps ## install, build and run every CPU test (what CI runs)
	@$(MAKE) --no-print-directory -j$(NPROC) all $(TESTS) $(CXX_TEST) $(EMULATOR)
	@scripts/run-tests.sh $(QFORGE) $(TESTS) $(CXX_TEST) $(EMULATOR)

# A GPU test exits 77 (skipped) without a GPU and fails when one is there but does not start;
# QF_GPU_REQUIRED=1 (scripts/gpu-check.sh, on GPU hosts) makes a skip fail too.
test-gpu: all $(GPU_TESTS) ## CUDA kernels against their CPU references (skip without a GPU)
	@for t in $(GPU_TESTS); do echo "== $$t"; $$t; rc=$$?; \
	  [ $$rc = 0 ] || { [ $$rc = 77 ] && [ -z "$${QF_GPU_REQUIRED:-}" ]; } || exit 1; done

bench: all ## CPU benchmarks: RTN conversion rate vs cat, validator tokens/s
	@scripts/bench.sh $(QFORGE)

bench-gpu: all ## kernel benchmark against cuBLAS bf16 (needs a GPU)
	$(QFORGE) bench kernels

# ---- sanitizers -------------------------------------------------------------------------
# A CPU-only ASan+UBSan build of qforge and the cmocka tests in build-asan/ (NVCC empty, so no
# CUDA), then the unit and CLI tests against it; any sanitizer report fails (scripts/sanitize.sh).
SAN_BUILD ?= build-asan
SAN_CC    ?= $(CC)
SAN_FLAGS ?= -fsanitize=address,undefined -fno-omit-frame-pointer -g -O1
sanitize: ## ASan+UBSan build in build-asan/, unit + CLI tests, fails on any sanitizer report
	@$(MAKE) --no-print-directory -j$(NPROC) BUILD=$(SAN_BUILD) CC=$(SAN_CC) OPT="$(SAN_FLAGS)" WERROR= NVCC= \
	  $(SAN_BUILD)/qforge $(SAN_BUILD)/qforge-testing $(TEST_SRC:tests/%.c=$(SAN_BUILD)/tests/%)
	@scripts/sanitize.sh $(SAN_BUILD)/qforge $(TEST_SRC:tests/%.c=$(SAN_BUILD)/tests/%)

# ---- fuzzing ----------------------------------------------------------------------------
# Every tests/fuzz/fuzz_*.c under libFuzzer + ASan + UBSan (clang), the library instrumented in
# build-fuzz/, each run a fixed, seeded budget over tests/fuzz/corpus/ (tests/fuzz/run.sh; part
# of `make test`).  QF_FUZZ_SCALE=N multiplies the budgets for a release campaign.
fuzz: ## libFuzzer harnesses (ASan+UBSan, clang) for a fixed seeded budget; fails on any report
	@tests/fuzz/run.sh

check-deps: ## enforce the include direction between stage folders
	@scripts/check-deps.sh $(foreach d,$(LIB_DIRS) convert,"$(d):$(subst $(space),$(comma),$(strip $(INC_$(d))))")

clean:
	rm -rf $(BUILD)

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/' | expand -t 14

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(TESTING_OBJ:.o=.d)
