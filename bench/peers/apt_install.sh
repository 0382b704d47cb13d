# Sourced by the peers' install scripts: apt_install <caller> <package>... installs Debian packages quietly,
# through sudo when not root. Fails with a message naming the caller when apt-get is missing.
apt_install() {
  local caller="$1"
  shift
  if ! command -v apt-get >/dev/null; then
    echo "${caller}: apt-get not found; install $* by hand" >&2
    return 1
  fi
  local sudo_prefix=()
  if [ "$(id -u)" -ne 0 ]; then sudo_prefix=(sudo -n); fi
  echo "${caller}: apt-get install $*"
  DEBIAN_FRONTEND=noninteractive "${sudo_prefix[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_prefix[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
