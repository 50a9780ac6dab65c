#!/bin/sh
# build.sh SRC BUILD CLANG — configures and builds the fuzzers (TT_FUZZ=ON)
# with clang in BUILD; the fuzz.build test of `make test` and `make fuzz`.
set -e
src=$1 bin=$2 cc=$3
cmake -S "$src" -B "$bin" -DCMAKE_C_COMPILER="$cc" -DTT_FUZZ=ON -DCMAKE_BUILD_TYPE=Fuzz >/dev/null
cmake --build "$bin" -j "${FUZZ_JOBS:-2}"
