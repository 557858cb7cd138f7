# Injected with CMAKE_PROJECT_INCLUDE by scripts/setup.sh, only for the PyPI-wheel underlay.
# The wheels' CMake exports name the wheel build machine's Python and numpy include directories;
# CMake refuses imported targets whose include directories do not exist. At the end of the
# configure step, every imported target's missing Python/numpy include entries are replaced with
# this interpreter's.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)

function(_dw_fix_imported_includes)
  get_directory_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  foreach(_t IN LISTS _targets)
    get_target_property(_dirs ${_t} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_fixed "")
    set(_changed FALSE)
    foreach(_d IN LISTS _dirs)
      if(NOT _d MATCHES "^\\$<" AND NOT EXISTS "${_d}")
        if(_d MATCHES "numpy")
          list(APPEND _fixed ${Python3_NumPy_INCLUDE_DIRS})
        elseif(_d MATCHES "include/python3")
          list(APPEND _fixed ${Python3_INCLUDE_DIRS})
        endif()
        set(_changed TRUE)
      else()
        list(APPEND _fixed "${_d}")
      endif()
    endforeach()
    if(_changed)
      list(REMOVE_DUPLICATES _fixed)
      set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _dw_fix_imported_includes)
