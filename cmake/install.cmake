# Installs the library, its public headers and a CMake package so that
# find_package(netkit) + target_link_libraries(app netkit::netkit) works.
include(CMakePackageConfigHelpers)
install(TARGETS netkit EXPORT netkitTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/netkit DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT netkitTargets NAMESPACE netkit:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/netkit)
configure_package_config_file(cmake/netkitConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/netkitConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/netkit)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/netkitConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/netkitConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/netkitConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/netkit)
if(TARGET netkit-cli)
  install(TARGETS netkit-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
