# The .deb: cmake --build build --target package → build/canserver_<version>_<arch>.deb with the
# three tools, the systemd units, /etc/canserver/canserver.conf (a conffile), man pages and the
# docs. Dependencies come from the shared libraries the binaries really link (dpkg-shlibdeps).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME canserver)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "canserver developers <canserver@rig.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "share Linux CAN interfaces with many TCP clients")
# The extended description: CPack puts the summary above it and indents each line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "canserver bridges each CAN channel of a test rig to many TCP clients; each
behaves as if it had its own SocketCAN socket: its own filters and periodic
jobs, every frame in bus order, nothing lost silently. Clients speak the
remote CAN protocol (python-can's 'remote' interface, version 5; version 6
adds CAN FD).

The package has canserver with systemd units (canserver.service reading
/etc/canserver/canserver.conf, canserver@IFACE.service for one interface),
a status page and Prometheus metrics (--http), and the tools canremote and
canbench.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "can-utils")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${PROJECT_SOURCE_DIR}/tools/debian/conffiles")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)

# Debian policy: a copyright file and a changelog in /usr/share/doc/canserver.
install(FILES ${PROJECT_SOURCE_DIR}/tools/debian/copyright
        DESTINATION share/doc/canserver)
set(changelog ${PROJECT_BINARY_DIR}/changelog.gz)
add_custom_command(OUTPUT ${changelog}
  COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/tools/debian/changelog > ${changelog}
  DEPENDS ${PROJECT_SOURCE_DIR}/tools/debian/changelog)
add_custom_target(debian_changelog ALL DEPENDS ${changelog})
install(FILES ${changelog} DESTINATION share/doc/canserver)
install(FILES ${PROJECT_SOURCE_DIR}/docs/canserver.conf DESTINATION share/doc/canserver
        RENAME canserver.conf.example)
include(CPack)
