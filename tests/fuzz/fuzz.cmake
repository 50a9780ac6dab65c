# tests/fuzz/fuzz.cmake — the libFuzzer targets (issue 16 item 14), included
# from the top-level CMakeLists.txt in two roles:
#
#  - TT_FUZZ=ON (a clang build of its own: build-fuzz/ for `make fuzz`,
#    BUILD/fuzz/ for `make test`): one static library of every src/*.c
#    instrumented with -fsanitize=fuzzer-no-link,address,undefined, and one
#    fuzz_<target> per tests/fuzz/fuzz_<target>.c linked with
#    -fsanitize=fuzzer. Nothing else is built there.
#  - the normal gcc build: registers ctest tests. fuzz.build (a fixture)
#    configures and builds BUILD/fuzz with clang; fuzz.<target> runs each
#    fuzzer for TT_FUZZ_TEST_SECONDS over its committed seed corpus
#    (tests/fuzz/corpus/<target>/, read only; new inputs go to
#    BUILD/fuzz-work/<target>/corpus, crashes to .../artifacts).
#
# The fuzzers link one library of all sources rather than the per-folder
# layers: what matters here is instrumentation, not the layering.
file(GLOB TT_FUZZERS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)

if(TT_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "TT_FUZZ needs clang (libFuzzer): cmake -DCMAKE_C_COMPILER=clang -DTT_FUZZ=ON")
  endif()
  set(FZ_SAN -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_library(llhttp-fuzz STATIC ${LLHTTP_DIR}/api.c ${LLHTTP_DIR}/http.c ${LLHTTP_DIR}/llhttp.c)
  target_include_directories(llhttp-fuzz PUBLIC ${LLHTTP_INC})
  target_compile_definitions(llhttp-fuzz PUBLIC LLHTTP_STRICT_MODE=1)
  target_compile_options(llhttp-fuzz PRIVATE -fsanitize=fuzzer-no-link ${FZ_SAN} -w)

  file(GLOB_RECURSE fz_src CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/*.c)
  add_library(ttfuzz STATIC ${fz_src} ${CMAKE_BINARY_DIR}/web_assets.c)
  target_include_directories(ttfuzz PUBLIC ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
  target_include_directories(ttfuzz SYSTEM PUBLIC ${VIPS_INCLUDE_DIRS})
  target_compile_definitions(ttfuzz PUBLIC _GNU_SOURCE)
  target_compile_options(ttfuzz PRIVATE ${TT_WARN} -fsanitize=fuzzer-no-link ${FZ_SAN})
  target_link_libraries(ttfuzz PUBLIC llhttp-fuzz PkgConfig::DEPS m pthread ${CMAKE_DL_LIBS})

  foreach(f ${TT_FUZZERS})
    get_filename_component(name ${f} NAME_WE)
    add_executable(${name} ${f})
    target_compile_options(${name} PRIVATE ${TT_WARN} -fsanitize=fuzzer ${FZ_SAN})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer ${FZ_SAN})
    target_link_libraries(${name} PRIVATE ttfuzz)
  endforeach()
  return()
endif()

set(TT_FUZZ_TEST_SECONDS 15 CACHE STRING "seconds each fuzz.<target> test runs its fuzzer (make test)")
# A fixed seed: make test replays one mutation sequence (a slower machine runs
# a prefix of it), so a CI verdict does not hang on what a random walk finds
# that day; exploring is make fuzz's job (random seeds, longer).
set(TT_FUZZ_TEST_SEED 1 CACHE STRING "libFuzzer -seed of the fuzz.<target> tests (make test)")
find_program(TT_CLANG NAMES clang clang-14)
if(NOT TT_CLANG)
  message(FATAL_ERROR "clang not found: the fuzz.* tests (tests/fuzz) need clang and libFuzzer: "
                      "run scripts/install-deps.sh")
endif()
set(fz_bin ${CMAKE_BINARY_DIR}/fuzz)
add_test(NAME fuzz.build COMMAND sh ${CMAKE_SOURCE_DIR}/tests/fuzz/build.sh ${CMAKE_SOURCE_DIR} ${fz_bin} ${TT_CLANG})
set_tests_properties(fuzz.build PROPERTIES FIXTURES_SETUP tt_fuzz_build TIMEOUT 900)
foreach(f ${TT_FUZZERS})
  get_filename_component(name ${f} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" short ${name})
  add_test(NAME fuzz.${short}
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/fuzz/run.sh ${fz_bin}/${name} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${short}
                   ${CMAKE_BINARY_DIR}/fuzz-work/${short} ${TT_FUZZ_TEST_SECONDS} ${TT_FUZZ_TEST_SEED})
  set_tests_properties(fuzz.${short} PROPERTIES FIXTURES_REQUIRED tt_fuzz_build TIMEOUT 300)
endforeach()
