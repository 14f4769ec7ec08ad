# One INTERFACE target carries the project's warning and sanitizer flags; every target links it.
add_library(canserver_options INTERFACE)
add_library(canserver::options ALIAS canserver_options)
target_compile_options(canserver_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wconversion -Wno-sign-conversion -Wimplicit-fallthrough)
if(CANSERVER_WERROR)
  target_compile_options(canserver_options INTERFACE -Werror)
endif()
if(CANSERVER_SANITIZE STREQUAL "address")
  target_compile_options(canserver_options INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(canserver_options INTERFACE -fsanitize=address,undefined)
elseif(CANSERVER_SANITIZE STREQUAL "thread")
  target_compile_options(canserver_options INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(canserver_options INTERFACE -fsanitize=thread)
elseif(NOT CANSERVER_SANITIZE STREQUAL "")
  message(FATAL_ERROR "CANSERVER_SANITIZE must be '', 'address' or 'thread'")
endif()

if(CANSERVER_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "CANSERVER_FUZZ needs clang (-DCMAKE_CXX_COMPILER=clang++)")
  endif()
  # Coverage instrumentation everywhere; the fuzz targets add libFuzzer's main themselves.
  target_compile_options(canserver_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                         -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(canserver_options INTERFACE -fsanitize=address,undefined)
endif()
