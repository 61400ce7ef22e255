# What `cmake --install` puts where, under the prefix (GNUInstallDirs names;
# "lib" is lib/<multiarch> when the prefix is /usr on Debian):
#
#   include/weft.h, include/weft/*.h   the API
#   lib/libweft.so.MAJOR.MINOR.PATCH   the shared library, soname
#     (+ libweft.so.MAJOR, libweft.so) libweft.so.MAJOR; links for ld.so, ld
#   lib/libweft.a                      the static library
#   lib/pkgconfig/weft.pc              pkg-config; Libs.private and
#                                      Requires.private serve --static
#   lib/cmake/weft/                    find_package(weft CONFIG): weft::weft
#                                      (shared), weft::weft_static
#   libexec/weft/<demo>                the demos (demos/CMakeLists.txt)
#   bin/weft-compare, bin/weft-trace-svg  tools/CMakeLists.txt

include(CMakePackageConfigHelpers)

set(WEFT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/weft)

install(TARGETS weft weft_static EXPORT weftTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES include/weft.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The optional parts (weft/curl.h, ...), once there are some.
install(DIRECTORY include/weft DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  OPTIONAL FILES_MATCHING PATTERN "*.h")

# weft.pc. Its prefix must be the one the install runs with, which
# `cmake --install --prefix P` may change after configuration: so
# configure_file() fills in everything else now and leaves
# @WEFT_PC_PREFIX@ standing, and a second configure_file() at install time
# puts the install's CMAKE_INSTALL_PREFIX there (without DESTDIR, which is
# only where the files are staged).
set(WEFT_PC_PREFIX "@WEFT_PC_PREFIX@")
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(WEFT_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(WEFT_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
# What a static link needs besides libweft.a: the modules weft's build
# found with pkg-config, and the threads library.
set(WEFT_PC_REQUIRES_PRIVATE "hwloc")
if(WEFT_JEMALLOC)
  string(APPEND WEFT_PC_REQUIRES_PRIVATE " jemalloc")
endif()
configure_file(cmake/weft.pc.in ${CMAKE_CURRENT_BINARY_DIR}/weft.pc.stage @ONLY)
install(CODE "
  set(WEFT_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${CMAKE_CURRENT_BINARY_DIR}/weft.pc.stage\"
                 \"${CMAKE_CURRENT_BINARY_DIR}/weft.pc\" @ONLY)")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/weft.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The CMake package: weftTargets.cmake (the imported targets, relocatable),
# weftConfig.cmake (finds their dependencies first) and
# weftConfigVersion.cmake (any 0.x.y satisfies a request for 0.1, as the
# soname libweft.so.0 promises).
install(EXPORT weftTargets NAMESPACE weft:: DESTINATION ${WEFT_CMAKE_DIR})
configure_package_config_file(cmake/weftConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/weftConfig.cmake
  INSTALL_DESTINATION ${WEFT_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/weftConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/weftConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/weftConfigVersion.cmake
  DESTINATION ${WEFT_CMAKE_DIR})
