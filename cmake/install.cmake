# `cmake --install`: the program, its man page and bash completion, the
# example definitions with the scripts that build their images, and the unit
# template that runs a fleet as a service (haco-fleet@NAME.service, see
# systemd/haco-fleet@.service.in). scripts/package.sh makes a .deb of the same.
include(GNUInstallDirs)

set(HACO_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(HACO_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING "Where the systemd unit template is installed")
set(HACO_DATA_DIR ${CMAKE_INSTALL_DATADIR}/haco-fleet)
configure_file(${CMAKE_SOURCE_DIR}/systemd/haco-fleet@.service.in ${CMAKE_BINARY_DIR}/systemd/haco-fleet@.service @ONLY)

# Slurm's Epilog for `haco-fleet slurm submit` jobs (docs/multi-host.md); the
# build tree gets one that runs the built program, for the Slurm cluster test.
set(HACO_EPILOG_PATH ${CMAKE_INSTALL_FULL_LIBEXECDIR}/haco-fleet/slurm-epilog)
configure_file(${CMAKE_SOURCE_DIR}/slurm/haco-fleet-slurm-epilog.in ${CMAKE_BINARY_DIR}/slurm/slurm-epilog @ONLY)
function(haco_build_tree_epilog)
  set(HACO_BINDIR ${CMAKE_BINARY_DIR})
  set(HACO_EPILOG_PATH ${CMAKE_BINARY_DIR}/slurm/build-tree/slurm-epilog)
  configure_file(${CMAKE_SOURCE_DIR}/slurm/haco-fleet-slurm-epilog.in ${CMAKE_BINARY_DIR}/slurm/build-tree/slurm-epilog
                 @ONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
                 WORLD_EXECUTE)
endfunction()
haco_build_tree_epilog()

install(TARGETS haco-fleet RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(PROGRAMS ${CMAKE_BINARY_DIR}/slurm/slurm-epilog DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/haco-fleet)
install(FILES ${CMAKE_BINARY_DIR}/systemd/haco-fleet@.service DESTINATION ${HACO_SYSTEMD_UNIT_DIR})
install(FILES ${CMAKE_SOURCE_DIR}/templates/busybox-httpd.haco ${CMAKE_SOURCE_DIR}/templates/phpinfo.haco
              ${CMAKE_SOURCE_DIR}/templates/phpinfo-oci.haco
        DESTINATION ${HACO_DATA_DIR}/templates)
install(PROGRAMS ${CMAKE_SOURCE_DIR}/scripts/build-busybox-image.sh ${CMAKE_SOURCE_DIR}/scripts/build-php-image.sh
                 ${CMAKE_SOURCE_DIR}/scripts/build-php-oci.sh
        DESTINATION ${HACO_DATA_DIR}/scripts)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/haco-fleet.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME haco-fleet)

# The man page is the program's own --help, made by help2man at build time.
find_program(HELP2MAN_EXECUTABLE help2man)
if(HELP2MAN_EXECUTABLE)
  set(HACO_MAN_PAGE_DEFAULT ON)
else()
  set(HACO_MAN_PAGE_DEFAULT OFF)
  message(STATUS "help2man not found: no man page (scripts/install-deps.sh installs it)")
endif()
option(HACO_MAN_PAGE "Build and install the haco-fleet(1) man page with help2man" ${HACO_MAN_PAGE_DEFAULT})
if(HACO_MAN_PAGE)
  if(NOT HELP2MAN_EXECUTABLE)
    message(FATAL_ERROR "HACO_MAN_PAGE is ON but help2man is missing: run scripts/install-deps.sh")
  endif()
  set(HACO_MAN_PAGE_FILE ${CMAKE_BINARY_DIR}/man/haco-fleet.1)
  add_custom_command(OUTPUT ${HACO_MAN_PAGE_FILE}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${CMAKE_SOURCE_DIR}/packaging/man-page.sh $<TARGET_FILE:haco-fleet> ${HACO_MAN_PAGE_FILE}
    DEPENDS haco-fleet ${CMAKE_SOURCE_DIR}/packaging/man-page.sh
    COMMENT "Writing the haco-fleet(1) man page with help2man")
  add_custom_target(man-page ALL DEPENDS ${HACO_MAN_PAGE_FILE})
  install(FILES ${HACO_MAN_PAGE_FILE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()

# The .deb (scripts/package.sh configures a build with CMAKE_INSTALL_PREFIX
# /usr and runs cpack -G DEB). Its Depends are the libraries the program
# links, as dpkg-shlibdeps finds them; what it runs besides is essential in
# Debian (/bin/sh) or there whenever it is used (systemd-run and systemctl,
# only when systemd is the init). The image builders need busybox-static and
# mmdebstrap: recommended, as a fleet may use images of its own.
set(HACO_PACKAGE_MAINTAINER "haco-fleet developers <haco-fleet@localhost>" CACHE STRING "Maintainer field of the .deb")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME haco-fleet)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${HACO_PACKAGE_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "launcher for fleets of isolated Linux containers")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${HACO_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "busybox-static, mmdebstrap")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion")
# CPack puts the summary first and indents these lines (an empty one becomes " .").
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "haco-fleet brings up hundreds of isolated containers as one fleet from a
haconiwa-style .haco definition and a port range: one instance per port,
each with its own namespaces, uid/gid range, cgroups and root filesystem,
supervised, listed, stopped and restarted as a whole or one by one.

Ships example definitions, the scripts that build their images, a systemd
unit template (haco-fleet@NAME.service), bash completion and a man page.")
include(CPack)
