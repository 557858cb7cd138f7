# Source this (bash) to get the environment every command of this repo runs in:
#   the .venv, the ROS 2 underlay that the PyPI wheels install into it, the colcon overlay built by
#   `make setup` (.ws/install), this checkout first on PYTHONPATH, logs, localhost-only discovery
#   and the Fast DDS large-data profile.
# With a real ROS install (apt), source /opt/ros/<distro>/setup.bash and your workspace instead.
_dw_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DW_REPO="$_dw_repo"
export VIRTUAL_ENV="$_dw_repo/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
# The wheels' prefix is the venv root; it has no setup.bash, so it is exported by hand.
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
if [ -f "$_dw_repo/.ws/install/local_setup.sh" ]; then
  # colcon's script reads unset variables: relax `set -u` (if the caller has it) around it
  _dw_nounset=$(set +o | grep nounset); set +u
  # shellcheck disable=SC1091
  COLCON_CURRENT_PREFIX="$_dw_repo/.ws/install" . "$_dw_repo/.ws/install/local_setup.sh"
  eval "$_dw_nounset"; unset _dw_nounset
fi
# The checkout before the installed copy: edits need no rebuild (see dense_warper_ros/__init__.py).
export PYTHONPATH="$_dw_repo${PYTHONPATH:+:$PYTHONPATH}"
export HOME="${HOME:-$_dw_repo/.ws}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$_dw_repo/.ws/log/ros}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# (FASTRTPS_DEFAULT_PROFILES_FILE is the deprecated name; Fast DDS 3 reads this one)
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_dw_repo/config/fastdds_large_data.xml}"
export PYTHONUNBUFFERED=1
unset _dw_repo
