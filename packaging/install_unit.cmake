# Installs systemd/ice.service with its ExecStart naming the plugin as nbdkit can find it: `ice`
# when the plugin lands in nbdkit's plugindir, its full path otherwise. Run by `cmake --install`
# with ICE_UNIT_SOURCE, ICE_UNIT_STAGING, ICE_INSTALL_PLUGINDIR and ICE_NBDKIT_PLUGINDIR set.
set(plugin "${CMAKE_INSTALL_PREFIX}/${ICE_INSTALL_PLUGINDIR}/nbdkit-ice-plugin.so")
cmake_path(NORMAL_PATH plugin)
file(READ "${ICE_UNIT_SOURCE}" unit)
if(NOT plugin STREQUAL "${ICE_NBDKIT_PLUGINDIR}/nbdkit-ice-plugin.so")
  string(REPLACE " -f ice config=" " -f ${plugin} config=" unit "${unit}")
endif()
file(WRITE "${ICE_UNIT_STAGING}" "${unit}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     FILES "${ICE_UNIT_STAGING}")
