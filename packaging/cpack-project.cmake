# Read by cpack (CPACK_PROJECT_CONFIG_FILE). A .deb installs in /usr: it is built from a build
# configured with -DCMAKE_INSTALL_PREFIX=/usr (scripts/deb.sh does that), so that every path
# the build wrote (multiarch libdir, /etc, the unit's ExecStart) is the installed one.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "a .deb installs in /usr but this build is configured for "
    "${CPACK_PACKAGING_INSTALL_PREFIX}: use bash scripts/deb.sh "
    "(or configure with -DCMAKE_INSTALL_PREFIX=/usr)")
endif()
