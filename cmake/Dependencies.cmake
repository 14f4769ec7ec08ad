# Every dependency comes from Debian 12's archive (scripts/install-deps.sh installs them).
find_package(absl REQUIRED)
find_package(Threads REQUIRED)
if(CANSERVER_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(CANSERVER_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# The moodycamel packages (libconcurrentqueue-dev, libreaderwriterqueue-dev) ship headers only and
# no CMake config, so we wrap them in imported targets. Only core/ring.h includes them.
find_path(MOODYCAMEL_CQ_INCLUDE_DIR concurrentqueue/concurrentqueue.h REQUIRED)
find_path(MOODYCAMEL_RWQ_INCLUDE_DIR readerwriterqueue/readerwriterqueue.h REQUIRED)
add_library(moodycamel::queues INTERFACE IMPORTED)
target_include_directories(moodycamel::queues SYSTEM INTERFACE
  "${MOODYCAMEL_CQ_INCLUDE_DIR}" "${MOODYCAMEL_RWQ_INCLUDE_DIR}")

# The HTTP endpoint (--http): GNU libmicrohttpd (libmicrohttpd-dev) serves, nlohmann-json3-dev writes
# /api/status. systemd's sd_notify (libsystemd-dev) for Type=notify units.
find_package(PkgConfig REQUIRED)
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET GLOBAL libmicrohttpd)
pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET GLOBAL gnutls)  # libgnutls28-dev: HTTPS client certificates (net/http_server.cc)
if(CANSERVER_BUILD_TESTS)
  # Tests' HTTP client only.
  pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib)
endif()
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET GLOBAL libsystemd)
find_package(nlohmann_json REQUIRED)
