# Installation and packaging, included by the top-level CMakeLists.txt.
#
#   cmake --install build [--prefix P]        (DESTDIR=... honoured)
#   bash scripts/deb.sh                        (the .deb: a build configured for /usr, then cpack)
#
# installs: include/klinefeed.h; libklinefeed.so.X.Y.Z + soname and dev links; libklinefeed.a;
# klinefeed.pc (and klinefeed-static.pc: libklinefeed.a by path); the CMake package klinefeed
# (klinefeed::klinefeed, klinefeed::klinefeed_static); the programs klinefeed and klinefeed-sim; man pages klinefeed(1), klinefeed-sim(1),
# libklinefeed(3); klinefeed.service and its settings file (etc/default/klinefeed, mode 0600);
# README and the reference docs.
include(CMakePackageConfigHelpers)

set(KF_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
  "where klinefeed.service is installed (relative: under the install prefix)")
set(KF_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/klinefeed")

# ---- libraries and header
# (the include directory is the targets' INSTALL_INTERFACE)
install(TARGETS klinefeed_shared EXPORT klinefeedTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS klinefeed_static EXPORT klinefeedStaticTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES include/klinefeed.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# ---- programs (the CLI is linked with the static library)
install(TARGETS klinefeed-cli klinefeed-sim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# ---- CMake package: find_package(klinefeed CONFIG [COMPONENTS static])
install(EXPORT klinefeedTargets NAMESPACE klinefeed:: DESTINATION ${KF_CMAKEDIR})
install(EXPORT klinefeedStaticTargets NAMESPACE klinefeed:: DESTINATION ${KF_CMAKEDIR})
configure_package_config_file(packaging/klinefeedConfig.cmake.in
  ${CMAKE_BINARY_DIR}/packaging/klinefeedConfig.cmake INSTALL_DESTINATION ${KF_CMAKEDIR})
# 0.x: a minor version may break the ABI (see the soname), so only the same minor is compatible
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_kf_compat SameMinorVersion)
else()
  set(_kf_compat SameMajorVersion)
endif()
write_basic_package_version_file(${CMAKE_BINARY_DIR}/packaging/klinefeedConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${_kf_compat})
install(FILES ${CMAKE_BINARY_DIR}/packaging/klinefeedConfig.cmake
  ${CMAKE_BINARY_DIR}/packaging/klinefeedConfigVersion.cmake DESTINATION ${KF_CMAKEDIR})

# ---- man pages and documentation
#      (written by hand in docs/man/; the version is filled in here)
foreach(page klinefeed.1 klinefeed-sim.1 libklinefeed.3)
  configure_file(docs/man/${page} ${CMAKE_BINARY_DIR}/man/${page} @ONLY)
  string(REGEX REPLACE ".*\\." "" _section ${page})
  install(FILES ${CMAKE_BINARY_DIR}/man/${page}
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man${_section})
endforeach()
install(FILES README.md docs/cli.md docs/schema.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The live page embeds lightweight-charts (Apache-2.0): its NOTICE and licence go with the program.
install(FILES web/NOTICE-lightweight-charts
        ${CMAKE_BINARY_DIR}/web/node_modules/lightweight-charts/LICENSE
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/lightweight-charts)

# ---- files that name installed paths (klinefeed.pc, klinefeed.service) and the settings file:
#      written at install time for the prefix actually installed to (cmake --install --prefix,
#      cpack), not the one configured
configure_file(packaging/install-paths.cmake.in ${CMAKE_BINARY_DIR}/packaging/install-paths.cmake
  @ONLY)
install(SCRIPT ${CMAKE_BINARY_DIR}/packaging/install-paths.cmake)

# ---- the Debian package (CPack DEB): bash scripts/deb.sh
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME klinefeed)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "klinefeed")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Binance USDT-M Futures kline collector: daemon, simulator and C library")
set(CPACK_PACKAGE_DESCRIPTION "klinefeed collects Binance USDT-M Futures klines (candlesticks)
over WebSocket, repairs gaps from REST and stores every closed candle exactly
once in SQLite, JSON lines or CSV. This package holds the klinefeed daemon and
its systemd unit, the klinefeed-sim exchange simulator, and libklinefeed
(shared and static library, header, pkg-config and CMake files).")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_SET_DESTDIR ON) # /etc/default/klinefeed lies outside the prefix
set(CPACK_STRIP_FILES ON) # programs and libklinefeed.so (not the archive)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "klinefeed maintainers <klinefeed@localhost>" CACHE STRING
  "Maintainer field of the .deb")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)      # libc6, libcurl4, libssl3, libuv1, libsqlite3-0, libpq5, libnats3.4, libmicrohttpd12
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON) # DEBIAN/shlibs for libklinefeed.so
# only to build programs against the library with pkg-config or CMake (Requires.private)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS
  "pkg-config, libuv1-dev, libssl-dev, libcurl4-openssl-dev | libcurl-dev, libsqlite3-dev, libpq-dev, libnats-dev")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(_kf_deb ${CMAKE_BINARY_DIR}/packaging/debian)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(KF_DEB_CONFFILE "/etc/default/klinefeed")
else()
  set(KF_DEB_CONFFILE "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR}/default/klinefeed")
endif()
configure_file(packaging/debian/conffiles.in ${_kf_deb}/conffiles @ONLY)
foreach(f postinst prerm postrm triggers)
  configure_file(packaging/debian/${f} ${_kf_deb}/${f} COPYONLY)
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${_kf_deb}/conffiles;${_kf_deb}/postinst;${_kf_deb}/prerm;${_kf_deb}/postrm;${_kf_deb}/triggers")
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_SOURCE_DIR}/packaging/cpack-project.cmake)
include(CPack)

# ---- tests (label install): what is exported, the man pages, and an install used from outside
if(KF_BUILD_TESTS)
  add_test(NAME test_symbols COMMAND bash ${CMAKE_SOURCE_DIR}/tests/install/symbols.sh
    $<TARGET_FILE:klinefeed_shared> $<TARGET_FILE:klinefeed_static>
    ${CMAKE_SOURCE_DIR}/include/klinefeed.h ${CMAKE_C_COMPILER} ${KF_SOVERSION})
  add_test(NAME test_man COMMAND bash ${CMAKE_SOURCE_DIR}/tests/install/man.sh
    ${CMAKE_BINARY_DIR}/man/klinefeed.1 ${CMAKE_BINARY_DIR}/man/klinefeed-sim.1
    ${CMAKE_BINARY_DIR}/man/libklinefeed.3)
  set_tests_properties(test_symbols test_man PROPERTIES LABELS install TIMEOUT 120)
  # (not in a sanitizer build: a program built outside would lack the sanitizer runtime)
  if(NOT KF_SANITIZE AND NOT KF_TSAN AND NOT KF_FUZZ)
    add_test(NAME test_install COMMAND bash ${CMAKE_SOURCE_DIR}/tests/install/install.sh
      ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR} ${CMAKE_C_COMPILER} ${PROJECT_VERSION}
      ${KF_SOVERSION})
    set_tests_properties(test_install PROPERTIES LABELS install TIMEOUT 300)
  endif()
endif()
